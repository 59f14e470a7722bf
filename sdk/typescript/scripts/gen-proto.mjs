// Generates the sandbox.v1 gRPC stubs into src/gen/ with Debian's `protoc` and the ts-proto plugin
// (a devDependency). Generated code is never edited and never committed; `npm run build` runs this
// first, so dist/ always matches the protos of this checkout. AGENTFENSE_PROTO_DIR overrides where
// the .proto files are (default: the repository's proto/).
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const protoDir = resolve(process.env.AGENTFENSE_PROTO_DIR ?? join(pkg, "..", "..", "proto"));
const out = join(pkg, "src", "gen");
const plugin = join(pkg, "node_modules", ".bin", "protoc-gen-ts_proto");
const files = readdirSync(join(protoDir, "sandbox", "v1"))
  .filter((f) => f.endsWith(".proto"))
  .map((f) => join("sandbox", "v1", f));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const options = [
  "outputServices=grpc-js", // client classes for @grpc/grpc-js
  "esModuleInterop=true",
  "importSuffix=.js", // ESM: relative imports need the extension
  "env=node", // bytes are Buffers
  "forceLong=number", // int64 as number (sizes, ids: far below 2^53)
  "useDate=true", // Timestamp as Date
  "outputTypeRegistry=false",
  "exportCommonSymbols=false",
].join(",");
try {
  execFileSync(
    "protoc",
    [
      `--plugin=protoc-gen-ts_proto=${plugin}`,
      `--ts_proto_out=${out}`,
      `--ts_proto_opt=${options}`,
      `-I${protoDir}`,
      ...files,
    ],
    { stdio: "inherit" },
  );
} catch (e) {
  console.error(
    "gen-proto: protoc failed. It comes from Debian's protobuf-compiler package " +
      "(apt-get install protobuf-compiler), which also provides the google/protobuf includes.",
  );
  throw e;
}
console.log(`gen-proto: ${files.length} protos from ${protoDir} -> src/gen/`);
