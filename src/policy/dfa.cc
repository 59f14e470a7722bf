#include "policy/dfa.h"

namespace agentfense::policy::internal {

// Allocated with its successor table right behind it (see Allocate), so that following a
// transition is a single dependent load: &state + offset → next state.
struct LazyDfa::State {
  std::vector<uint32_t> set;
  SetSummary summary;

  // Successor per byte class; nullptr until computed. Written once, under mu_, with release.
  // A cache, hence mutable through a const State.
  std::atomic<const State*>* next() const {
    return reinterpret_cast<std::atomic<const State*>*>(const_cast<State*>(this) + 1);
  }

  static State* Allocate(std::vector<uint32_t> set, SetSummary summary, uint32_t classes) {
    static_assert(sizeof(State) % alignof(std::atomic<const State*>) == 0);
    void* mem = ::operator new(sizeof(State) + classes * sizeof(std::atomic<const State*>));
    auto* s = new (mem) State{std::move(set), summary};
    for (uint32_t c = 0; c < classes; ++c) new (s->next() + c) std::atomic<const State*>(nullptr);
    return s;
  }
};

// The atomics are trivially destructible; only the set needs its destructor.
void LazyDfa::StateDeleter::operator()(State* s) const noexcept {
  s->~State();
  ::operator delete(s);
}

size_t LazyDfa::VecHash::operator()(const std::vector<uint32_t>& v) const noexcept {
  uint64_t h = 0xcbf29ce484222325ULL ^ v.size();
  for (uint32_t x : v) {
    h ^= x;
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return static_cast<size_t>(h);
}

class LazyDfa::Cursor {
 public:
  Cursor(const LazyDfa& dfa, const State* from) : dfa_(dfa), state_(from) {}

  void Feed(uint8_t byte) {
    if (state_ != nullptr) {
      uint32_t cls = dfa_.nfa_.byte_class[byte];
      const State* n = state_->next()[cls].load(std::memory_order_acquire);
      if (n == nullptr) n = dfa_.Successor(state_, cls, &set_);
      state_ = n;  // nullptr: cache full, set_ holds the successor set
      return;
    }
    scratch_.clear();
    dfa_.nfa_.Step(set_, byte, &scratch_);
    Canonicalize(&scratch_);
    set_.swap(scratch_);
  }

  SetSummary Summary() const { return state_ != nullptr ? state_->summary : dfa_.Summarize(set_); }

 private:
  const LazyDfa& dfa_;
  const State* state_;
  std::vector<uint32_t> set_;
  std::vector<uint32_t> scratch_;
};

LazyDfa::LazyDfa(const Nfa* nfa, const std::vector<uint32_t>* rank,
                 const std::vector<Level>* levels, size_t budget_bytes)
    : nfa_(*nfa), rank_(*rank), levels_(*levels), budget_bytes_(budget_bytes) {
  std::vector<uint32_t> start;
  for (uint32_t s : nfa_.rule_start) {
    const auto& st = nfa_.states[s];
    start.insert(start.end(), nfa_.closures.begin() + st.closure_begin,
                 nfa_.closures.begin() + st.closure_end);
  }
  Canonicalize(&start);
  std::lock_guard lock(mu_);
  start_ = NewStateLocked(std::move(start));
}

LazyDfa::~LazyDfa() = default;

SetSummary LazyDfa::Summarize(const std::vector<uint32_t>& set) const {
  SetSummary out;
  for (uint32_t q : set) {
    const Nfa::State& st = nfa_.states[q];
    auto r = static_cast<int32_t>(st.rule);
    if (st.accepting && (out.best_accept < 0 || rank_[st.rule] > rank_[out.best_accept])) {
      out.best_accept = r;
    }
    if (st.live_nonslash && levels_[st.rule] >= Level::kView &&
        (out.best_visible_live < 0 || rank_[st.rule] > rank_[out.best_visible_live])) {
      out.best_visible_live = r;
    }
  }
  if (out.best_accept >= 0) {
    out.accept_rank = rank_[out.best_accept];
    out.accept_visible = levels_[out.best_accept] >= Level::kView;
  }
  if (out.best_visible_live >= 0) out.visible_rank = rank_[out.best_visible_live];
  return out;
}

const LazyDfa::State* LazyDfa::NewStateLocked(std::vector<uint32_t> set) const {
  // Counted twice: the state's own copy and the index key. 64 covers node and bucket overhead.
  bytes_ += sizeof(State) + 2 * set.size() * sizeof(uint32_t) +
            nfa_.num_classes * sizeof(std::atomic<const State*>) + 64;
  SetSummary summary = Summarize(set);
  std::unique_ptr<State, StateDeleter> state(State::Allocate(set, summary, nfa_.num_classes));
  const State* raw = state.get();
  index_.emplace(std::move(set), raw);
  states_.push_back(std::move(state));
  return raw;
}

const LazyDfa::State* LazyDfa::Successor(const State* s, uint32_t cls,
                                         std::vector<uint32_t>* overflow) const {
  // The NFA step runs outside the lock: concurrent misses compute in parallel and only the
  // (cheap) publication is serialized.
  std::vector<uint32_t> set;
  nfa_.Step(s->set, nfa_.class_rep[cls], &set);
  Canonicalize(&set);
  std::lock_guard lock(mu_);
  if (const State* done = s->next()[cls].load(std::memory_order_relaxed)) return done;
  const State* target = nullptr;
  if (auto it = index_.find(set); it != index_.end()) {
    target = it->second;
  } else if (bytes_ + set.size() * 2 * sizeof(uint32_t) <= budget_bytes_) {
    target = NewStateLocked(std::move(set));
  } else {
    *overflow = std::move(set);
    return nullptr;
  }
  s->next()[cls].store(target, std::memory_order_release);
  return target;
}

namespace {

// Called for the '/' at `i` of a path of `size` bytes, with the summaries before and after it.
// That '/' ends the ancestor path[0, i), or for i == 0 stands for the root, whose "beneath" set
// is the one after the '/' itself (the root's children are "/" + name).
void NoteSlash(LazyDfa::Walk* walk, size_t i, size_t size, const SetSummary& before,
               const SetSummary& after) {
  if (i == 0) {
    if (size > 1 && InvisibleDirectory(after, after)) {
      walk->hidden_ancestor = true;
      walk->hidden_rule = after.best_accept;
    }
  } else if (InvisibleDirectory(before, after)) {
    walk->hidden_ancestor = true;
    walk->hidden_rule = before.best_accept;
  }
}

}  // namespace

LazyDfa::Walk LazyDfa::Run(std::string_view path, bool then_slash) const {
  Walk walk;
  // Fast path: follow cached transitions, one load per byte, no lock, no allocation; at each '/'
  // two more loads check that the directory just completed is visible.
  const State* s = start_;
  const uint8_t* cls = nfa_.byte_class.data();
  size_t i = 0;
  for (; i < path.size(); ++i) {
    auto b = static_cast<uint8_t>(path[i]);
    const State* n = s->next()[cls[b]].load(std::memory_order_acquire);
    if (n == nullptr) break;
    if (b == '/' && !walk.hidden_ancestor) NoteSlash(&walk, i, path.size(), s->summary, n->summary);
    s = n;
  }
  if (i == path.size()) {
    walk.at = s->summary;
    if (!then_slash) {
      walk.beneath = walk.at;
      return walk;
    }
    if (const State* n =
            s->next()[cls[static_cast<uint8_t>('/')]].load(std::memory_order_acquire)) {
      walk.beneath = n->summary;
      return walk;
    }
  }
  // Slow path: fill the cache (or simulate the NFA once it is full) for the rest.
  Cursor cursor(*this, s);
  for (; i < path.size(); ++i) {
    auto b = static_cast<uint8_t>(path[i]);
    if (b == '/' && !walk.hidden_ancestor) {
      SetSummary before = cursor.Summary();
      cursor.Feed(b);
      NoteSlash(&walk, i, path.size(), before, cursor.Summary());
    } else {
      cursor.Feed(b);
    }
  }
  walk.at = cursor.Summary();
  if (then_slash) {
    cursor.Feed('/');
    walk.beneath = cursor.Summary();
  } else {
    walk.beneath = walk.at;
  }
  return walk;
}

std::vector<uint32_t> LazyDfa::SetAfter(std::string_view path) const {
  std::vector<uint32_t> set = start_->set;
  std::vector<uint32_t> next;
  for (char c : path) {
    next.clear();
    nfa_.Step(set, static_cast<uint8_t>(c), &next);
    Canonicalize(&next);
    set.swap(next);
  }
  return set;
}

size_t LazyDfa::CachedStates() const {
  std::lock_guard lock(mu_);
  return states_.size();
}

}  // namespace agentfense::policy::internal
