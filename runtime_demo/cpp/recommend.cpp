// Top-K recommendations from an edge-rec-toolkit .pte with ExecuTorch's C++ runtime: what an
// Android (JNI) or iOS app embeds. Same answers, in the same JSON, as `python -m runtime_demo`.
//
//   recommend --model builds/mobile-arm/model.int8.pte --history 50,172,181 [--json]
//   recommend --model builds/mobile-arm/model.int8.pte --histories FILE.jsonl     (one JSON line each)
//   recommend --model builds/mobile-arm/model.int8.pte --histories FILE.jsonl --bench 1000
//
// Contract (shared/DESIGN.md): input `history` int64 [1, L], item indices oldest first, left-padded
// with 0; outputs `scores` float32 [1, K] and `items` int64 [1, K], best first. items.json next to
// the model maps index -> original id (index 0 is padding). The app drops answers that are in the
// WHOLE history (the model only knows its window; kept when manifest.json's serving.repeats is
// "allow") or have a non-finite score, then keeps at most
// manifest.json's profile.serving.top_k (everything, when there is no manifest.json next to it).
//
// Exit codes: 0 success, 2 bad input or usage (one line on stderr), 3 internal error.
//
// Kernels and the XNNPACK backend register themselves from static initializers of their shared
// libraries; nothing here names them. CMakeLists.txt links them on purpose (see the comments there).

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

#include "process_memory.h"  // status_bytes, shared with the .onnx client (onnx/bench_onnx.cpp)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

// The wheel ships libexecutorch_threadpool.so but not its header (threadpool.h, which also needs
// pthreadpool.h). These two declarations are copied from extension/threadpool/threadpool.h of the
// same release; only member functions are called, never constructed, so the class layout is not
// needed. _unsafe_reset_threadpool is what the Python bindings call to size XNNPACK's pool.
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::aten::ScalarType;
using executorch::extension::from_blob;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 2;
constexpr int kExitInternal = 3;
constexpr int kScoreDecimals = 6;
constexpr const char* kItemsFile = "items.json";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kUsage =
    "usage: recommend --model FILE.pte (--history ID,ID,... | --histories FILE.jsonl [--bench N]) "
    "[--json] [--threads T] [--warmup W] [--verbose]";

// Bad input or usage: main() prints "error: <what>" on one line and exits 2.
struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- ExecuTorch's log --------------------------------------------------------------------------
// The runtime logs through the PAL. Registered here so a bad model gives one clear line (with the
// runtime's own reason) instead of a page of log; --verbose lets the log through.

bool g_verbose = false;
std::vector<std::string> g_runtime_errors;  // error-level log lines, oldest first

void emit_log(et_timestamp_t, et_pal_log_level_t level, const char* file, const char*, size_t line,
              const char* message, size_t length) {
  std::string text(message, length);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (level == kError || level == kFatal) g_runtime_errors.push_back(text);
  if (g_verbose) std::fprintf(stderr, "[executorch %s:%zu] %s\n", file, line, text.c_str());
}

// The error code, with the runtime's own words: the line that names what is missing when there is
// one (a kernel or a backend that was not linked), else its last error line.
std::string runtime_reason(Error error) {
  std::string detail = g_runtime_errors.empty() ? "" : g_runtime_errors.back();
  for (const std::string& line : g_runtime_errors) {
    if (line.find("Missing operator") != std::string::npos || line.find("not registered") != std::string::npos) {
      detail = line;
      break;
    }
  }
  return std::string(executorch::runtime::to_string(error)) + (detail.empty() ? "" : ": " + detail);
}

// ---- a small JSON reader -----------------------------------------------------------------------
// Three small inputs (items.json, manifest.json, the --histories lines) need lists of strings and
// one integer. A complete, strict reader of that size keeps the program free of dependencies, so
// the same file cross-compiles for arm64 with nothing installed in the target sysroot.

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;                                 // String: UTF-8
  std::vector<Json> items;                          // Array
  std::vector<std::pair<std::string, Json>> fields;  // Object, in file order

  const Json* field(const std::string& name) const {
    if (kind != Kind::Object) return nullptr;
    for (const auto& [key, value] : fields)
      if (key == name) return &value;
    return nullptr;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}

  Json document() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;
  const std::string& s_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(what + " at byte " + std::to_string(pos_));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool consume(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "'");
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end");
    Json value;
    const char c = s_[pos_];
    if (c == '"') {
      value.kind = Json::Kind::String;
      value.text = parse_string();
    } else if (c == '[') {
      value.kind = Json::Kind::Array;
      ++pos_;
      if (!consume(']')) {
        do value.items.push_back(parse_value(depth + 1));
        while (consume(','));
        expect(']');
      }
    } else if (c == '{') {
      value.kind = Json::Kind::Object;
      ++pos_;
      if (!consume('}')) {
        do {
          skip_space();
          if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a key");
          std::string key = parse_string();
          expect(':');
          value.fields.emplace_back(std::move(key), parse_value(depth + 1));
        } while (consume(','));
        expect('}');
      }
    } else if (s_.compare(pos_, 4, "true") == 0 || s_.compare(pos_, 5, "false") == 0) {
      value.kind = Json::Kind::Bool;
      value.boolean = c == 't';
      pos_ += value.boolean ? 4 : 5;
    } else if (s_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
    } else {
      value.kind = Json::Kind::Number;
      value.number = parse_number();
    }
    return value;
  }

  double parse_number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == from) fail("expected a digit");
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') ++pos_;
    else digits();
    if (pos_ < s_.size() && s_[pos_] == '.') ++pos_, digits();
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      digits();
    }
    return std::strtod(s_.substr(start, pos_ - start).c_str(), nullptr);
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("short \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      value <<= 4;
      if (h >= '0' && h <= '9') value |= h - '0';
      else if (h >= 'a' && h <= 'f') value |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') value |= h - 'A' + 10;
      else fail("bad \\u escape");
    }
    return value;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_;  // the opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const unsigned char c = s_[pos_++];
      if (c == '"') return out;
      if (c < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);  // raw UTF-8 bytes; validated by the caller's reader
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            if (s_.compare(pos_, 2, "\\u") != 0) fail("lone surrogate");
            pos_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
};

// Strict UTF-8 (no overlongs, no surrogates): the text Python's read_text(encoding="utf-8") accepts.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int extra = 0;
    unsigned cp = 0, min = 0;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) extra = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) extra = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) extra = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput(path + ": no such file" + what);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Json parse_json(const std::string& text, const std::string& where) {
  if (!valid_utf8(text)) throw BadInput(where + ": not valid JSON (not UTF-8)");
  try {
    return JsonReader(text).document();
  } catch (const std::invalid_argument& e) {
    throw BadInput(where + ": not valid JSON (" + e.what() + ")");
  }
}

std::optional<std::vector<std::string>> as_string_list(const Json& value) {
  if (value.kind != Json::Kind::Array) return std::nullopt;
  std::vector<std::string> out;
  for (const Json& item : value.items) {
    if (item.kind != Json::Kind::String) return std::nullopt;
    out.push_back(item.text);
  }
  return out;
}

// ---- JSON writing, byte for byte as runtime_demo/recommend.py ----------------------------------

// A string as Python's json.dumps writes it: ASCII only, \uXXXX (lowercase hex, surrogate pairs)
// for everything else, the short escapes for " \ \b \f \n \r \t.
std::string json_string(const std::string& utf8) {
  std::string out = "\"";
  char buffer[16];
  auto escape = [&](unsigned unit) {
    std::snprintf(buffer, sizeof buffer, "\\u%04x", unit);
    out += buffer;
  };
  for (size_t i = 0; i < utf8.size();) {
    const unsigned char c = utf8[i];
    unsigned cp = c;
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : 3;
    if (extra) cp = c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
    i += extra + 1;
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (cp >= 0x20 && cp < 0x7F) {
          out += static_cast<char>(cp);
        } else if (cp >= 0x10000) {
          escape(0xD800 + ((cp - 0x10000) >> 10));
          escape(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
          escape(cp);
        }
    }
  }
  return out + "\"";
}

// Fixed 6 decimals, half away from zero, of the exact binary value: Python's
// Decimal(score).quantize(ROUND_HALF_UP) and JavaScript's toFixed(6). printf alone rounds ties to
// even, so it prints every digit (a float's expansion is exact within 160 digits) and rounds here.
std::string format_score(float score) {
  if (score == 0.0f) return "0.000000";  // no "-0.000000" for a negative zero
  char exact[512];
  std::snprintf(exact, sizeof exact, "%.160f", std::fabs(static_cast<double>(score)));
  std::string digits(exact);
  const size_t point = digits.find('.');
  std::string kept = digits.substr(0, point) + digits.substr(point + 1, kScoreDecimals);
  if (digits[point + 1 + kScoreDecimals] >= '5') {  // the 7th decimal decides: half or more rounds up
    int i = static_cast<int>(kept.size()) - 1;
    for (; i >= 0 && kept[i] == '9'; --i) kept[i] = '0';
    if (i < 0) kept.insert(kept.begin(), '1');
    else ++kept[i];
  }
  const size_t whole = kept.size() - kScoreDecimals;
  return (score < 0 ? "-" : "") + kept.substr(0, whole) + "." + kept.substr(whole);
}

// ---- the recommender ---------------------------------------------------------------------------

struct Answer {
  std::vector<std::string> items;  // original ids, best first
  std::vector<float> scores;
  std::vector<std::string> unknown;  // ids of the request that are not in items.json (skipped)
  size_t known = 0;                  // history items found in items.json
  size_t used = 0;                   // history items the model saw (at most its window)
};

std::string format_json(const Answer& answer) {
  std::string out = "{\"items\": [";
  for (size_t k = 0; k < answer.items.size(); ++k) out += (k ? ", " : "") + json_string(answer.items[k]);
  out += "], \"scores\": [";
  for (size_t k = 0; k < answer.scores.size(); ++k) out += (k ? ", " : "") + format_score(answer.scores[k]);
  return out + "]}";
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

bool is_file(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

// items.json: index -> original id, index 0 the padding "".
std::vector<std::string> read_items(const std::string& path) {
  const std::string text = read_file(path, " (items.json must lie next to the artifact)");
  auto items = as_string_list(parse_json(text, path));
  if (!items || items->size() < 2)
    throw BadInput(path + ": expected a JSON list of item id strings, index 0 the padding \"\"");
  return *items;
}

// How many answers the app keeps: manifest.json's profile.serving.top_k, or all when there is none.
std::optional<size_t> read_top_k(const std::string& path) {
  if (!is_file(path)) return std::nullopt;
  const Json manifest = parse_json(read_file(path, ""), path);
  const Json* profile = manifest.field("profile");
  const Json* serving = profile ? profile->field("serving") : nullptr;
  const Json* top_k = serving ? serving->field("top_k") : nullptr;
  if (!top_k || top_k->kind != Json::Kind::Number || top_k->number < 1 || top_k->number != std::floor(top_k->number))
    throw BadInput(path + ": profile.serving.top_k must be a positive integer");
  return static_cast<size_t>(top_k->number);
}

// Whether the app keeps answers the user has already seen: manifest.json's serving.repeats is "allow"
// (a build made with --repeats allow); "drop", no such field or no manifest: they are dropped.
bool read_allow_repeats(const std::string& path) {
  if (!is_file(path)) return false;
  const Json manifest = parse_json(read_file(path, ""), path);
  const Json* serving = manifest.field("serving");
  const Json* repeats = serving ? serving->field("repeats") : nullptr;
  if (!repeats) return false;
  if (repeats->kind != Json::Kind::String || (repeats->text != "drop" && repeats->text != "allow"))
    throw BadInput(path + ": serving.repeats must be \"drop\" or \"allow\"");
  return repeats->text == "allow";
}

class Recommender {
 public:
  // Loads the program and its forward method now (not on the first request), with the XNNPACK
  // thread pool sized first: the delegate takes the pool when the method loads.
  Recommender(const std::string& model, unsigned threads)
      : model_(model),
        item_ids_(read_items(directory_of(model) + "/" + kItemsFile)),
        keep_(read_top_k(directory_of(model) + "/" + kManifestFile)),
        allow_repeats_(read_allow_repeats(directory_of(model) + "/" + kManifestFile)),
        module_(std::make_unique<Module>(model, Module::LoadMode::Mmap)) {
    for (size_t i = 1; i < item_ids_.size(); ++i) index_.emplace(item_ids_[i], static_cast<int64_t>(i));
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr || !pool->_unsafe_reset_threadpool(threads))
      throw BadInput("--threads " + std::to_string(threads) + ": the runtime's thread pool could not be sized");
    threads_ = pool->get_thread_count();

    const Error loaded = module_->load_method("forward");
    if (loaded != Error::Ok)
      throw BadInput(model_ + ": not a loadable executorch artifact (" + runtime_reason(loaded) + ")");
    const auto meta = module_->method_meta("forward");
    if (!meta.ok()) throw BadInput(model_ + ": no forward method (" + runtime_reason(meta.error()) + ")");
    const auto input = meta->input_tensor_meta(0);
    const auto output = meta->output_tensor_meta(0);
    if (!input.ok() || !output.ok() || input->scalar_type() != ScalarType::Long || input->sizes().size() != 2 ||
        output->sizes().size() != 2 || meta->num_outputs() != 2)
      throw BadInput(model_ + ": not an edge-rec artifact (expected history int64 [1, L] -> scores, items [1, K])");
    max_history_ = input->sizes()[1];
    output_k_ = output->sizes()[1];
  }

  size_t threads() const { return threads_; }
  int64_t max_history() const { return max_history_; }
  size_t model_top_k() const { return static_cast<size_t>(output_k_); }

  // Original ids (oldest first) -> the [1, L] input: known indices, the most recent L, left-padded.
  std::vector<int64_t> encode(const std::vector<std::string>& history, Answer& answer,
                              std::vector<int64_t>& known) const {
    for (const std::string& item : history) {
      const auto found = index_.find(item);
      if (found == index_.end()) answer.unknown.push_back(item);
      else known.push_back(found->second);
    }
    std::vector<int64_t> input(static_cast<size_t>(max_history_), 0);  // zeros: left padding
    const size_t used = std::min(known.size(), input.size());
    std::copy(known.end() - used, known.end(), input.end() - used);
    answer.known = known.size();
    answer.used = used;
    return input;
  }

  // One model call on a [1, L] input: the raw (scores, items), best first.
  std::pair<std::vector<float>, std::vector<int64_t>> run(std::vector<int64_t>& input) {
    TensorPtr tensor = from_blob(input.data(), {1, static_cast<int>(max_history_)}, ScalarType::Long);
    const auto outputs = module_->forward(tensor);
    if (!outputs.ok()) throw BadInput(model_ + ": forward failed (" + runtime_reason(outputs.error()) + ")");
    const auto& scores = outputs->at(0).toTensor();
    const auto& items = outputs->at(1).toTensor();
    const float* s = scores.const_data_ptr<float>();
    const int64_t* i = items.const_data_ptr<int64_t>();
    return {std::vector<float>(s, s + scores.numel()), std::vector<int64_t>(i, i + items.numel())};
  }

  // The app's answer: the model's list minus padding, items the whole history already holds and
  // non-finite scores, then at most top_k of them.
  Answer recommend(const std::vector<std::string>& history) {
    Answer answer;
    std::vector<int64_t> known;
    std::vector<int64_t> input = encode(history, answer, known);
    const auto [scores, items] = run(input);
    std::unordered_set<int64_t> seen;  // empty when repeats are allowed: seen items are answers
    if (!allow_repeats_) seen.insert(known.begin(), known.end());
    for (size_t k = 0; k < items.size(); ++k) {
      const int64_t index = items[k];
      if (index == 0 || seen.count(index) || !std::isfinite(scores[k])) continue;
      if (index < 0 || static_cast<size_t>(index) >= item_ids_.size())
        throw BadInput(model_ + ": answered item " + std::to_string(index) + ", but items.json has " +
                       std::to_string(item_ids_.size()) + " entries (items.json from another build?)");
      if (keep_ && answer.items.size() == *keep_) break;
      answer.items.push_back(item_ids_[static_cast<size_t>(index)]);
      answer.scores.push_back(scores[k]);
    }
    return answer;
  }

 private:
  std::string model_;
  std::vector<std::string> item_ids_;
  std::unordered_map<std::string, int64_t> index_;
  std::optional<size_t> keep_;
  bool allow_repeats_;
  std::unique_ptr<Module> module_;
  size_t threads_ = 0;
  int64_t max_history_ = 0;
  int64_t output_k_ = 0;
};

// ---- input -------------------------------------------------------------------------------------

std::string strip(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

std::string quoted(const std::string& text) {  // for messages: the text as the user typed it
  return "'" + text + "'";
}

// "ID,ID,..." (oldest first) -> ids; "" is the empty history. Same rules as the Python demo.
std::vector<std::string> parse_history(const std::string& text) {
  std::vector<std::string> items;
  if (strip(text).empty()) return items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    items.push_back(strip(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (items.back().empty())
      throw BadInput("--history " + quoted(text) + ": item " + std::to_string(items.size()) +
                     " is empty; expected ID,ID,... (oldest first)");
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

// --histories FILE: JSON Lines, one JSON list of original ids (oldest first) per line.
std::vector<std::vector<std::string>> read_histories(const std::string& path) {
  const std::string text = read_file(path, " (--histories)");
  std::vector<std::vector<std::string>> histories;
  std::istringstream lines(text);
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (strip(line).empty()) continue;
    const std::string where = "--histories " + path + " line " + std::to_string(number);
    auto history = as_string_list(parse_json(line, where));
    if (!history) throw BadInput(where + ": expected a JSON list of item id strings");
    histories.push_back(std::move(*history));
  }
  if (histories.empty()) throw BadInput("--histories " + path + ": no histories (one JSON list of ids per line)");
  return histories;
}

struct Args {
  std::string model;
  std::optional<std::string> history, histories;
  std::optional<unsigned> bench;
  unsigned threads = 1, warmup = 100;
  bool json = false;
};

unsigned positive(const std::string& flag, const std::string& text, bool zero_ok = false) {
  char* end = nullptr;
  const unsigned long value = text.empty() || text[0] == '-' ? 0 : std::strtoul(text.c_str(), &end, 10);
  if (end == nullptr || *end != '\0' || value > 1000000000UL || (value == 0 && !(zero_ok && text == "0")))
    throw BadInput(flag + ": expected a " + (zero_ok ? "non-negative" : "positive") + " integer, got " + quoted(text));
  return static_cast<unsigned>(value);
}

Args parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "--json") { args.json = true; continue; }
    if (flag == "--verbose") { g_verbose = true; continue; }
    if (flag == "--help" || flag == "-h") { std::cout << kUsage << "\n"; std::exit(kExitOk); }
    const size_t equals = flag.find('=');
    if (equals != std::string::npos) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else if (flag.rfind("--", 0) == 0) {
      throw BadInput(flag + " needs a value (" + kUsage + ")");
    }
    if (flag == "--model") args.model = value;
    else if (flag == "--history") args.history = value;
    else if (flag == "--histories") args.histories = value;
    else if (flag == "--bench") args.bench = positive(flag, value);
    else if (flag == "--threads") args.threads = positive(flag, value);
    else if (flag == "--warmup") args.warmup = positive(flag, value, true);
    else throw BadInput("unknown argument " + quoted(argv[i]) + " (" + kUsage + ")");
  }
  if (args.model.empty()) throw BadInput(std::string("--model is required (") + kUsage + ")");
  if (args.history.has_value() == args.histories.has_value())
    throw BadInput(std::string("give exactly one of --history and --histories (") + kUsage + ")");
  if (args.bench && !args.histories) throw BadInput("--bench needs --histories FILE.jsonl (the requests to time)");
  const std::string suffix = ".pte";
  if (args.model.size() < suffix.size() || args.model.compare(args.model.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw BadInput("--model " + args.model + ": the C++ client runs .pte artifacts (ExecuTorch)");
  if (!is_file(args.model)) throw BadInput("--model " + args.model + ": no such file");
  return args;
}

// ---- output ------------------------------------------------------------------------------------

void warn_unknown(const std::vector<std::string>& unknown, size_t shown = 10) {
  if (unknown.empty()) return;
  std::string listed;
  for (size_t k = 0; k < std::min(shown, unknown.size()); ++k) listed += (k ? ", " : "") + unknown[k];
  if (unknown.size() > shown) listed += " and " + std::to_string(unknown.size() - shown) + " more";
  std::fprintf(stderr, "warning: skipped %zu unknown item id(s) not in %s: %s\n", unknown.size(), kItemsFile,
               listed.c_str());
}

void print_table(const Answer& answer, const Recommender& rec, const Args& args, size_t history_size) {
  const std::string window = answer.known > answer.used ? ", the last " + std::to_string(answer.used) + " of " +
                                                              std::to_string(answer.known) + " known"
                                                        : "";
  const std::string name = args.model.substr(args.model.find_last_of('/') + 1);
  std::printf("top %zu of %zu for a history of %zu item(s)%s (%s, ExecuTorch C++; items the history already "
              "holds are left out)\n",
              answer.items.size(), rec.model_top_k(), history_size, window.c_str(), name.c_str());
  size_t width = 4;
  for (const auto& item : answer.items) width = std::max(width, item.size());
  std::printf("%4s  %-*s  %10s\n", "rank", static_cast<int>(width), "item", "score");
  for (size_t k = 0; k < answer.items.size(); ++k)
    std::printf("%4zu  %-*s  %10s\n", k + 1, static_cast<int>(width), answer.items[k].c_str(),
                format_score(answer.scores[k]).c_str());
}

// --bench N: N timed model calls (after --warmup untimed ones) cycling through the histories,
// each encoded beforehand: the samples are the model call alone. One JSON object on stdout.
int bench(const Args& args, uint64_t rss_before_load) {
  const auto histories = read_histories(*args.histories);
  Recommender rec(args.model, args.threads);
  const uint64_t rss_after_load = status_bytes("VmRSS");
  std::vector<std::vector<int64_t>> inputs;
  for (const auto& history : histories) {
    Answer unused;
    std::vector<int64_t> known;
    inputs.push_back(rec.encode(history, unused, known));
  }
  for (unsigned r = 0; r < args.warmup; ++r) rec.run(inputs[r % inputs.size()]);
  std::vector<double> samples_ms;
  samples_ms.reserve(*args.bench);
  for (unsigned r = 0; r < *args.bench; ++r) {
    auto& input = inputs[r % inputs.size()];
    const auto start = std::chrono::steady_clock::now();
    rec.run(input);
    samples_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf("{\"runtime\": \"executorch-cpp\", \"threads\": %zu, \"runs\": %u, \"warmup\": %u, "
              "\"rss_before_load_bytes\": %llu, \"rss_after_load_bytes\": %llu, \"peak_rss_bytes\": %llu, "
              "\"samples_ms\": [",
              rec.threads(), *args.bench, args.warmup, static_cast<unsigned long long>(rss_before_load),
              static_cast<unsigned long long>(rss_after_load),
              static_cast<unsigned long long>(status_bytes("VmHWM")));
  for (size_t k = 0; k < samples_ms.size(); ++k) std::printf("%s%.6f", k ? ", " : "", samples_ms[k]);
  std::printf("]}\n");
  return kExitOk;
}

int run(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  const uint64_t rss_before_load = status_bytes("VmRSS");
  if (args.bench) return bench(args, rss_before_load);
  if (args.histories) {  // one JSON line per history, in file order
    const auto histories = read_histories(*args.histories);
    Recommender rec(args.model, args.threads);
    for (const auto& history : histories) {
      const Answer answer = rec.recommend(history);
      warn_unknown(answer.unknown);
      std::printf("%s\n", format_json(answer).c_str());
    }
    return kExitOk;
  }
  const auto history = parse_history(*args.history);  // fail fast, before loading
  Recommender rec(args.model, args.threads);
  const Answer answer = rec.recommend(history);
  warn_unknown(answer.unknown);
  if (args.json) std::printf("%s\n", format_json(answer).c_str());
  else print_table(answer, rec, args, history.size());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__));
  executorch::runtime::runtime_init();
  try {
    return run(argc, argv);
  } catch (const BadInput& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kExitInternal;
  }
}
