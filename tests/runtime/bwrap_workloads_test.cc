// Real work under the seccomp allow-list: the shells, interpreters and toolchains an agent runs
// must keep working when every system call off the list fails (src/runtime/seccomp_filter.h).
// One sandbox serves the whole suite (its state between cases does not matter here).
#include <unistd.h>

#include <memory>

#include "runtime_test_env.h"

namespace agentfense::runtime::testing {
namespace {

class BwrapWorkloads : public ::testing::Test {
 protected:
  static void TearDownTestSuite() {
    sandbox_.reset();
    workspace_.reset();
  }
  void SetUp() override {
    AF_REQUIRE_BWRAP();
    if (sandbox_) return;
    workspace_ = std::make_unique<TempWorkspace>();
    auto sb = BwrapSandbox::Start(DefaultSpec(workspace_->path()));
    ASSERT_TRUE(sb.ok()) << sb.error().ToString();
    sandbox_ = std::move(*sb);
  }
  // Runs `command` and expects exit 0 and `expected` as the whole stdout; stderr is shown when not.
  static void Expect(const std::string& command, const std::string& expected,
                     uint32_t timeout_ms = 60000) {
    auto r = sandbox_->Exec(Shell(command, timeout_ms));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->exit_code, 0) << command << "\nstderr: " << r->stderr_data;
    EXPECT_EQ(r->stdout_data, expected) << command << "\nstderr: " << r->stderr_data;
  }
  static std::unique_ptr<TempWorkspace> workspace_;
  static std::unique_ptr<BwrapSandbox> sandbox_;
};

std::unique_ptr<TempWorkspace> BwrapWorkloads::workspace_;
std::unique_ptr<BwrapSandbox> BwrapWorkloads::sandbox_;

TEST_F(BwrapWorkloads, Shells) {
  Expect("sh -c 'x=$((6*7)); echo $x; (exit 3); echo $?'", "42\n3\n");
  Expect(
      "bash -c 'a=(1 2 3); echo ${#a[@]}; f() { echo fn; }; f; tr a-z A-Z <<< here; "
      "sleep 0.1 & wait $!; echo waited; read -r l < <(echo piped); echo $l'",
      "3\nfn\nHERE\nwaited\npiped\n");
  Expect("busybox sh -c 'echo hello | busybox wc -c; busybox ps >/dev/null && echo ps'", "6\nps\n");
}

TEST_F(BwrapWorkloads, Python) {
  // Threads, fork-based and spawn-based process pools, a queue (POSIX semaphores in /dev/shm),
  // asyncio with sockets on loopback and a subprocess. (A file, not stdin: spawn re-imports it.)
  Expect(R"SH(cat > /tmp/work.py <<'EOF'
import asyncio, concurrent.futures, multiprocessing as mp, threading

def square(x):
    return x * x

def worker(q):
    q.put("from child")

async def main():
    async def serve(reader, writer):
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    server.close()
    proc = await asyncio.create_subprocess_exec("echo", "sub", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return line.decode().strip() + " " + out.decode().strip()

if __name__ == "__main__":
    t = threading.Thread(target=lambda: None); t.start(); t.join()
    with mp.get_context("fork").Pool(2) as pool:
        print(sum(pool.map(square, range(10))))
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        print(sum(ex.map(square, range(5))))
    q = mp.Queue()
    p = mp.Process(target=worker, args=(q,)); p.start(); print(q.get()); p.join()
    print(asyncio.run(main()))
EOF
python3 /tmp/work.py)SH",
         "285\n30\nfrom child\nPING sub\n");
}

TEST_F(BwrapWorkloads, PipVersion) {
  // pip and node come from scripts/bootstrap (python3-pip, nodejs); the host's /usr is bound in.
  AF_REQUIRE_CAPABILITY(::access("/usr/bin/pip", X_OK) == 0, "pip not installed (python3-pip)");
  auto r = sandbox_->Exec(Shell("pip --version"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0) << r->stderr_data;
  EXPECT_EQ(r->stdout_data.rfind("pip ", 0), 0u) << r->stdout_data << r->stderr_data;
}

TEST_F(BwrapWorkloads, GitMakeAndGcc) {
  Expect(R"SH(set -e
cd /tmp && rm -rf proj && mkdir proj && cd proj
git init -q . && git config user.email a@b && git config user.name agent
cat > hello.c <<'EOF'
#include <pthread.h>
#include <stdio.h>
static void* run(void* arg) { return arg; }
int main(void) {
  pthread_t t;
  void* out = 0;
  pthread_create(&t, 0, run, (void*)42);
  pthread_join(t, &out);
  printf("hello %ld\n", (long)out);
  return 0;
}
EOF
printf 'hello: hello.c\n\tgcc -O1 -pthread -o $@ $<\n' > Makefile
make -s && ./hello
git add -A && git commit -qm first && git log --format=%s && git status --porcelain | wc -l)SH",
         "hello 42\nfirst\n0\n");
}

TEST_F(BwrapWorkloads, Node) {
  AF_REQUIRE_CAPABILITY(::access("/usr/bin/node", X_OK) == 0, "node not installed (nodejs)");
  Expect(R"SH(node -e '
const { Worker } = require("worker_threads");
const cp = require("child_process");
const fs = require("fs/promises");
(async () => {
  await fs.writeFile("/tmp/n.txt", "node");
  const w = new Worker("require(\"worker_threads\").parentPort.postMessage(7)", { eval: true });
  const v = await new Promise((res) => w.on("message", res));
  console.log((await fs.readFile("/tmp/n.txt", "utf8")) + " " + v + " " +
              cp.execFileSync("echo", ["child"]).toString().trim());
})();')SH",
         "node 7 child\n");
}

}  // namespace
}  // namespace agentfense::runtime::testing
