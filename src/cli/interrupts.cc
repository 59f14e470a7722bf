#include "cli/interrupts.h"

#include <signal.h>

namespace agentfense::cli {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[3];

void OnSignal(int signo) {
  g_signal.store(signo);
  g_interrupted.store(true);
}

}  // namespace

InterruptGuard::InterruptGuard() {
  Reset();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &sa, &g_previous[i]);
}

InterruptGuard::~InterruptGuard() {
  for (size_t i = 0; i < 3; ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
}

const std::atomic<bool>* InterruptGuard::flag() { return &g_interrupted; }
bool InterruptGuard::interrupted() { return g_interrupted.load(); }
int InterruptGuard::signal_number() { return g_signal.load(); }
void InterruptGuard::Reset() {
  g_interrupted.store(false);
  g_signal.store(0);
}

}  // namespace agentfense::cli
