#include "policy/glob.h"

#include <algorithm>
#include <unordered_map>

namespace agentfense::policy::internal {
namespace {

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

bool IsStarRun(std::string_view seg) {
  return seg.size() >= 2 && seg.find_first_not_of('*') == std::string_view::npos;
}

// Parses the class starting at text[open] == '['. Returns the byte set (never containing '/') and
// sets *end to the index just past the closing ']'. A ']' right after '[' or '[!' is a member, as
// in POSIX; '-' first or last is a member; '\' has no special meaning.
Result<ByteSet> ParseClass(std::string_view text, size_t open, size_t* end) {
  size_t j = open + 1;
  bool negate = false;
  if (j < text.size() && (text[j] == '!' || text[j] == '^')) {
    negate = true;
    ++j;
  }
  ByteSet set;
  bool first = true;
  while (true) {
    if (j >= text.size() || text[j] == '/') {
      return Invalid("unbalanced '[' at byte " + std::to_string(open) +
                     " (a character class must close with ']' within one segment)");
    }
    if (text[j] == ']' && !first) break;
    first = false;
    auto lo = static_cast<unsigned char>(text[j]);
    if (j + 2 < text.size() && text[j + 1] == '-' && text[j + 2] != ']' && text[j + 2] != '/') {
      auto hi = static_cast<unsigned char>(text[j + 2]);
      if (hi < lo) {
        return Invalid("reversed range '" + std::string(text.substr(j, 3)) +
                       "' in character class at byte " + std::to_string(open));
      }
      for (unsigned b = lo; b <= hi; ++b) set.set(b);
      j += 3;
    } else {
      set.set(lo);
      ++j;
    }
  }
  if (negate) set.flip();
  set.reset('/');
  if (set.none()) {
    return Invalid("character class at byte " + std::to_string(open) + " matches nothing");
  }
  *end = j + 1;
  return set;
}

// One glob token (§3.2).
struct Token {
  enum Kind : uint8_t {
    kSet,       // one byte out of `set` (literal, '?', class)
    kStar,      // '*': any run of bytes other than '/'
    kAnyRun,    // '**' not forming a whole segment: any run of bytes, '/' included
    kSegments,  // '**/' at a segment start: zero or more whole segments, each followed by '/'
  };
  Kind kind;
  uint32_t set = 0;
};

class NfaBuilder {
 public:
  explicit NfaBuilder(Nfa* nfa) : nfa_(nfa) {
    ByteSet all;
    all.set();
    ByteSet not_slash = all;
    not_slash.reset('/');
    all_ = Intern(all);
    not_slash_ = Intern(not_slash);
  }

  uint32_t Intern(const ByteSet& set) {
    if (set.count() == 1) {
      for (uint32_t b = 0; b < 256; ++b) {
        if (set.test(b)) return b;
      }
    }
    auto [it, inserted] = interned_.try_emplace(set, 256 + nfa_->sets.size());
    if (inserted) nfa_->sets.push_back(set);
    return it->second;
  }

  uint32_t NewState(uint32_t rule) {
    nfa_->states.emplace_back();
    nfa_->states.back().rule = rule;
    pending_.emplace_back();
    eps_.push_back(-1);
    return static_cast<uint32_t>(nfa_->states.size() - 1);
  }
  void AddTrans(uint32_t from, uint32_t set, uint32_t to) { pending_[from].push_back({set, to}); }

  void AddRule(uint32_t rule, const NormalizedPattern& pattern, PatternType type) {
    std::string_view x = pattern.text;
    bool tail = false;
    if (type == PatternType::kDirectory) {
      tail = true;
      if (x == "/") x = {};
    } else if (type == PatternType::kGlob) {
      // A trailing "/**" (any number of them) = the path before it, and everything beneath.
      while (!x.empty()) {
        size_t slash = x.rfind('/');
        if (!IsStarRun(x.substr(slash + 1))) break;
        tail = true;
        x = x.substr(0, slash);
      }
    }
    std::vector<Token> tokens;
    if (type == PatternType::kGlob) {
      tokens = Tokenize(x);
    } else {
      for (char c : x) tokens.push_back({Token::kSet, static_cast<unsigned char>(c)});
    }

    uint32_t cur = NewState(rule);
    nfa_->rule_start.push_back(cur);
    for (const Token& t : tokens) {
      uint32_t next = 0;
      switch (t.kind) {
        case Token::kSet:
          next = NewState(rule);
          AddTrans(cur, t.set, next);
          break;
        case Token::kStar:
        case Token::kAnyRun:
          next = NewState(rule);
          AddTrans(cur, t.kind == Token::kStar ? not_slash_ : all_, cur);
          eps_[cur] = static_cast<int64_t>(next);
          break;
        case Token::kSegments: {
          uint32_t inside = NewState(rule);
          next = NewState(rule);
          AddTrans(cur, not_slash_, inside);
          AddTrans(inside, not_slash_, inside);
          AddTrans(inside, '/', cur);
          eps_[cur] = static_cast<int64_t>(next);
          break;
        }
      }
      cur = next;
    }
    // An empty remainder ("/**" → "") must not accept the empty string: no path is "".
    nfa_->states[cur].accepting = !x.empty();
    if (tail) {
      uint32_t beneath = NewState(rule);
      AddTrans(cur, '/', beneath);
      AddTrans(beneath, all_, beneath);
      nfa_->states[beneath].accepting = true;
    }
  }

  void Finish() {
    Nfa& n = *nfa_;
    const size_t count = n.states.size();
    for (size_t s = 0; s < count; ++s) {
      n.states[s].trans_begin = static_cast<uint32_t>(n.transitions.size());
      for (const auto& t : pending_[s]) n.transitions.push_back(t);
      n.states[s].trans_end = static_cast<uint32_t>(n.transitions.size());
      // Epsilon edges form short chains (a token adds at most one, to the next token's state, and
      // consecutive "**/" tokens are merged), so a closure is at most a few states.
      n.states[s].closure_begin = static_cast<uint32_t>(n.closures.size());
      for (int64_t e = static_cast<int64_t>(s); e >= 0; e = eps_[static_cast<size_t>(e)]) {
        n.closures.push_back(static_cast<uint32_t>(e));
      }
      n.states[s].closure_end = static_cast<uint32_t>(n.closures.size());
    }
    // can_accept by fixpoint. Edges go forward except the short back edges of "**/" and
    // self-loops, so this converges in a couple of passes.
    std::vector<char> can(count, 0);
    for (size_t s = 0; s < count; ++s) can[s] = n.states[s].accepting ? 1 : 0;
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t s = count; s-- > 0;) {
        if (can[s]) continue;
        bool reach = eps_[s] >= 0 && can[static_cast<size_t>(eps_[s])];
        for (const auto& t : pending_[s]) reach = reach || can[t.target];
        if (reach) {
          can[s] = 1;
          changed = true;
        }
      }
    }
    for (size_t s = 0; s < count; ++s) {
      for (const auto& t : pending_[s]) {
        bool non_slash = t.set < 256 ? t.set != '/' : true;  // interned sets are never just {'/'}
        if (non_slash && can[t.target]) n.states[s].live_nonslash = true;
      }
    }
    ComputeByteClasses();
  }

 private:
  std::vector<Token> Tokenize(std::string_view x) {
    std::vector<Token> tokens;
    size_t i = 0;
    while (i < x.size()) {
      char c = x[i];
      if (c == '*') {
        size_t j = x.find_first_not_of('*', i);
        if (j == std::string_view::npos) j = x.size();
        if (j - i == 1) {
          tokens.push_back({Token::kStar, 0});
        } else if (x[i - 1] == '/' && j < x.size() && x[j] == '/') {
          // "**/**/" = "**/": merging keeps epsilon chains short.
          if (tokens.empty() || tokens.back().kind != Token::kSegments) {
            tokens.push_back({Token::kSegments, 0});
          }
          ++j;  // the '/' belongs to the token
        } else {
          tokens.push_back({Token::kAnyRun, 0});
        }
        i = j;
      } else if (c == '?') {
        tokens.push_back({Token::kSet, not_slash_});
        ++i;
      } else if (c == '[') {
        size_t end = 0;
        auto set = ParseClass(x, i, &end);
        // NormalizePattern validated every class already.
        tokens.push_back({Token::kSet, set.ok() ? Intern(*set) : not_slash_});
        i = end > i ? end : i + 1;
      } else {
        tokens.push_back({Token::kSet, static_cast<unsigned char>(c)});
        ++i;
      }
    }
    return tokens;
  }

  // Partitions the bytes into classes no transition tells apart, so a DFA state needs one
  // successor per class rather than 256.
  void ComputeByteClasses() {
    Nfa& n = *nfa_;
    std::array<uint32_t, 256> cls{};
    uint32_t num = 1;
    auto split = [&](auto&& member) {
      std::array<int32_t, 512> id;
      id.fill(-1);
      uint32_t next = 0;
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t key = cls[b] * 2 + (member(b) ? 1 : 0);
        if (id[key] < 0) id[key] = static_cast<int32_t>(next++);
        cls[b] = static_cast<uint32_t>(id[key]);
      }
      num = next;
    };
    ByteSet literals;
    for (const auto& t : n.transitions) {
      if (t.set < 256) literals.set(t.set);
    }
    for (uint32_t lit = 0; lit < 256; ++lit) {
      if (literals.test(lit)) split([lit](uint32_t b) { return b == lit; });
    }
    for (const ByteSet& s : n.sets) split([&s](uint32_t b) { return s.test(b); });
    n.num_classes = num;
    for (uint32_t b = 0; b < 256; ++b) n.byte_class[b] = static_cast<uint8_t>(cls[b]);
    for (uint32_t b = 256; b-- > 0;) n.class_rep[cls[b]] = static_cast<uint8_t>(b);
  }

  Nfa* nfa_;
  uint32_t all_ = 0;
  uint32_t not_slash_ = 0;
  std::unordered_map<ByteSet, uint32_t> interned_;
  std::vector<std::vector<Nfa::Transition>> pending_;
  std::vector<int64_t> eps_;
};

}  // namespace

Result<NormalizedPattern> NormalizePattern(std::string_view raw, PatternType type) {
  if (raw.empty()) return Invalid("pattern is empty");
  if (raw.size() > kMaxPatternBytes) {
    return Invalid("pattern is " + std::to_string(raw.size()) + " bytes, over the limit of " +
                   std::to_string(kMaxPatternBytes));
  }
  if (raw.find('\0') != std::string_view::npos) return Invalid("pattern contains a NUL byte");
  NormalizedPattern out;
  out.text.reserve(raw.size() + 1);
  size_t i = 0;
  while (i < raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view seg = raw.substr(i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return Invalid("pattern contains a '..' segment");
    out.text += '/';
    out.text += seg;
  }
  if (out.text.empty()) out.text = "/";

  const std::string& t = out.text;
  if (type != PatternType::kGlob) {
    out.literal_prefix = out.literal_count = t.size();
    return out;
  }
  size_t k = 0;
  while (k < t.size()) {
    char c = t[k];
    if (c == '*' || c == '?' || c == '[') {
      if (!out.has_wildcard) out.literal_prefix = k;
      out.has_wildcard = true;
      if (c == '[') {
        size_t end = 0;
        AF_RETURN_IF_ERROR(ParseClass(t, k, &end));
        k = end;
      } else {
        ++k;
      }
    } else {
      ++out.literal_count;
      ++k;
    }
  }
  if (!out.has_wildcard) out.literal_prefix = t.size();
  return out;
}

void Canonicalize(std::vector<uint32_t>* set) {
  std::sort(set->begin(), set->end());
  set->erase(std::unique(set->begin(), set->end()), set->end());
}

void Nfa::Step(const std::vector<uint32_t>& from, uint8_t byte, std::vector<uint32_t>* out) const {
  for (uint32_t s : from) {
    const State& st = states[s];
    for (uint32_t t = st.trans_begin; t < st.trans_end; ++t) {
      if (!Contains(transitions[t].set, byte)) continue;
      const State& target = states[transitions[t].target];
      out->insert(out->end(), closures.begin() + target.closure_begin,
                  closures.begin() + target.closure_end);
    }
  }
}

Nfa BuildNfa(const std::vector<NormalizedPattern>& patterns,
             const std::vector<PatternType>& types) {
  Nfa nfa;
  NfaBuilder builder(&nfa);
  for (size_t r = 0; r < patterns.size(); ++r) {
    builder.AddRule(static_cast<uint32_t>(r), patterns[r], types[r]);
  }
  builder.Finish();
  return nfa;
}

}  // namespace agentfense::policy::internal
