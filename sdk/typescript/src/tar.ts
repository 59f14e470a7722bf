// A streaming tar writer for fromLocal's archive upload: POSIX ustar headers, with a pax record
// for names that do not fit (long or non-ASCII). Files are read in pieces and never held whole;
// the output comes in chunks of about CHUNK bytes (many small files share one chunk), so the
// number of gRPC messages depends on the bytes, not on the file count.
import { closeSync, constants, fstatSync, openSync, read } from "node:fs";
import { promisify } from "node:util";

import type { LocalFile } from "./ignore.js";

export const CHUNK = 1 << 20;
const BLOCK = 512;
const readAsync = promisify(read);

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, "0") + "\0", off, len, "ascii");
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body, "utf8");
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len++;
  return Buffer.from(`${len}${body}`, "utf8");
}

function header(name: string, size: number, mode: number, type: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, "utf8");
  octal(b, 100, 8, mode & 0o7777);
  octal(b, 108, 8, 0); // uid, gid: the server owns what it stores
  octal(b, 116, 8, 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, 0); // mtime is not kept by the store
  b.write(type, 156, 1, "ascii");
  b.write("ustar\u000000", 257, 8, "latin1");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "ascii");
  return b;
}

/** The header block(s) of one regular file: a pax record first when the name needs one. */
export function fileHeader(rel: string, size: number, mode: number): Buffer {
  // ustar's 100-byte name field holds ASCII names only in practice; 8 GiB is its size limit.
  const plain = /^[\x20-\x7e]*$/.test(rel) && rel.length <= 100;
  if (plain && size < 8 ** 11) return header(rel, size, mode, "0");
  const records = [plain ? Buffer.alloc(0) : paxRecord("path", rel)];
  if (size >= 8 ** 11) records.push(paxRecord("size", String(size)));
  const pax = Buffer.concat(records);
  const shortName = rel.replace(/[^\x20-\x7e]/g, "_").slice(-100);
  return Buffer.concat([
    header("PaxHeaders/" + shortName.slice(-89), pax.length, 0o644, "x"),
    pad(pax),
    header(shortName, Math.min(size, 8 ** 11 - 1), mode, "0"),
  ]);
}

function pad(data: Buffer): Buffer {
  const rest = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return rest ? Buffer.concat([data, Buffer.alloc(rest)]) : data;
}

export interface TarProgress {
  /** Called after each file's bytes were produced (not yet acknowledged by the server). */
  onFile?(file: LocalFile): void;
  /** Called for a file that could not be opened (vanished, unreadable); it is left out. */
  onSkip?(file: LocalFile, reason: string): void;
}

/**
 * The tar stream of `files` as chunks of about CHUNK bytes, ending with the end-of-archive marker.
 * A file is opened before its header is written (O_NOFOLLOW: a file swapped for a link since the
 * walk is not followed) and its size taken from the open file; a file that shrinks while being
 * read fails the whole stream, since its header already promised the old size.
 */
export async function* tarStream(
  files: Iterable<LocalFile>,
  progress: TarProgress = {},
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(CHUNK);
  let fill = 0;
  function* put(data: Buffer): Generator<Buffer> {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(CHUNK - fill, data.length - off);
      data.copy(buf, fill, off, off + n);
      fill += n;
      off += n;
      if (fill === CHUNK) {
        yield buf;
        buf = Buffer.allocUnsafe(CHUNK); // the yielded one now belongs to the consumer
        fill = 0;
      }
    }
  }
  for (const f of files) {
    signal?.throwIfAborted();
    // open, fstat and close are synchronous: three thread-pool round trips per file cost more than
    // the calls themselves, and a source tree is mostly small files. The data is read
    // asynchronously, so reading overlaps with sending on the event loop.
    let fd: number;
    try {
      fd = openSync(f.absPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      progress.onSkip?.(f, `vanished or unreadable during upload: ${(e as Error).message}`);
      continue;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) {
        progress.onSkip?.(f, "no longer a regular file; not uploaded");
        continue;
      }
      const size = st.size;
      yield* put(fileHeader(f.rel, size, st.mode & 0o777));
      let left = size;
      while (left > 0) {
        // Read straight into the chunk being assembled: no copy for big files.
        const want = Math.min(CHUNK - fill, left);
        let got: number;
        got = (await readAsync(fd, buf, fill, want, size - left)).bytesRead;
        if (got === 0) {
          throw new Error(`${f.rel} shrank while it was being uploaded (${size - left} of ${size} bytes)`);
        }
        fill += got;
        left -= got;
        if (fill === CHUNK) {
          yield buf;
          buf = Buffer.allocUnsafe(CHUNK);
          fill = 0;
        }
      }
      const rest = (BLOCK - (size % BLOCK)) % BLOCK;
      if (rest) yield* put(Buffer.alloc(rest));
      f.size = size;
      progress.onFile?.(f);
    } finally {
      closeSync(fd);
    }
  }
  yield* put(Buffer.alloc(2 * BLOCK)); // end of archive
  if (fill > 0) yield buf.subarray(0, fill);
}
