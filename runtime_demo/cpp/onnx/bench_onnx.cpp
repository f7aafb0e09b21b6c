// The native ONNX Runtime client of the .onnx artifacts: loads the program with ONNX Runtime's C API
// (the stable ABI an app links), times model calls and reports the whole process's memory, as the
// .pte client (../recommend.cpp --bench) does, so that an .onnx is judged on what an app pays and
// not on a Python interpreter with its bindings.
//
//   bench_onnx --runtime libonnxruntime.so.1.x --model model.int8.onnx --histories ROWS.txt
//              --bench 1000 [--warmup 50] [--threads 1]   (one command line)
//
// ROWS.txt: one history per line, the artifact's input row (L item indices, left-padded with 0,
// separated by spaces). Output: one JSON object on stdout (threads, runs, warmup, the RSS before
// and after loading, the peak RSS, each timed call's wall time in ms, and the `items` answered for
// each row, so a caller can check the answers against another runtime). Errors: one line on
// stderr, exit 2 for bad input, 1 for a runtime failure.
//
// The runtime library is opened by path (dlopen), not linked: the onnxruntime wheel ships
// libonnxruntime.so.1.x without the libonnxruntime.so.1 name its soname asks for, and its C API is
// reached through one exported symbol anyway (OrtGetApiBase). The header may be older than the
// library: the API table is versioned and a newer runtime serves every older version.
#include <dlfcn.h>
#include <onnxruntime_c_api.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../process_memory.h"  // status_bytes, shared with the .pte client

namespace {

constexpr const char* kUsage =
    "usage: bench_onnx --runtime LIB --model FILE.onnx --histories ROWS.txt --bench N [--warmup W] [--threads T]";

struct BadInput : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const OrtApi* ort = nullptr;

// Every C API call returns an OrtStatus (null: success); a failure becomes an exception with its message.
void check(OrtStatus* status, const char* what) {
  if (status == nullptr) return;
  const std::string message = std::string(what) + ": " + ort->GetErrorMessage(status);
  ort->ReleaseStatus(status);
  throw std::runtime_error(message);
}

struct Args {
  std::string runtime, model, histories;
  unsigned runs = 0, warmup = 50, threads = 1;
};

unsigned number(const std::string& flag, const std::string& value, bool zero_ok) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || (!zero_ok && n == 0) || n > 100000000UL)
    throw BadInput(flag + " " + value + ": expected a " + (zero_ok ? "non-negative" : "positive") + " integer");
  return static_cast<unsigned>(n);
}

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw BadInput(flag + ": needs a value (" + kUsage + ")");
    const std::string value = argv[i + 1];
    if (flag == "--runtime") args.runtime = value;
    else if (flag == "--model") args.model = value;
    else if (flag == "--histories") args.histories = value;
    else if (flag == "--bench") args.runs = number(flag, value, false);
    else if (flag == "--warmup") args.warmup = number(flag, value, true);
    else if (flag == "--threads") args.threads = number(flag, value, false);
    else throw BadInput("unknown flag " + flag + " (" + kUsage + ")");
  }
  if (args.runtime.empty() || args.model.empty() || args.histories.empty() || args.runs == 0)
    throw BadInput(std::string("--runtime, --model, --histories and --bench are required (") + kUsage + ")");
  return args;
}

std::vector<std::vector<int64_t>> read_rows(const std::string& path, int64_t length) {
  std::ifstream in(path);
  if (!in) throw BadInput("--histories " + path + ": cannot be read");
  std::vector<std::vector<int64_t>> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::vector<int64_t> row;
    for (int64_t v; fields >> v;) row.push_back(v);
    if (row.empty()) continue;
    if (static_cast<int64_t>(row.size()) != length)
      throw BadInput("--histories " + path + " line " + std::to_string(number) + ": " + std::to_string(row.size()) +
                     " indices, the model's input holds " + std::to_string(length));
    rows.push_back(std::move(row));
  }
  if (rows.empty()) throw BadInput("--histories " + path + ": no rows");
  return rows;
}

// One loaded session with its input shape; `run` answers the items of one history row.
class Session {
 public:
  Session(const std::string& model, unsigned threads) {
    check(ort->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "bench_onnx", &env_), "CreateEnv");
    OrtSessionOptions* options = nullptr;
    check(ort->CreateSessionOptions(&options), "CreateSessionOptions");
    // as the Python runtime is set up (export/runtime.py): `threads` intra-op, one inter-op, every optimization
    check(ort->SetIntraOpNumThreads(options, static_cast<int>(threads)), "SetIntraOpNumThreads");
    check(ort->SetInterOpNumThreads(options, 1), "SetInterOpNumThreads");
    check(ort->SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL), "SetSessionGraphOptimizationLevel");
    OrtStatus* created = ort->CreateSession(env_, model.c_str(), options, &session_);
    ort->ReleaseSessionOptions(options);
    check(created, ("--model " + model).c_str());
    OrtTypeInfo* type = nullptr;
    check(ort->SessionGetInputTypeInfo(session_, 0, &type), "SessionGetInputTypeInfo");
    const OrtTensorTypeAndShapeInfo* tensor = nullptr;
    check(ort->CastTypeInfoToTensorInfo(type, &tensor), "CastTypeInfoToTensorInfo");
    size_t rank = 0;
    check(ort->GetDimensionsCount(tensor, &rank), "GetDimensionsCount");
    shape_.resize(rank);
    check(ort->GetDimensions(tensor, shape_.data(), rank), "GetDimensions");
    ort->ReleaseTypeInfo(type);
    if (rank != 2 || shape_[0] != 1 || shape_[1] < 1)
      throw BadInput("--model " + model + ": input history is not [1, L] (the artifact contract)");
    check(ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_), "CreateCpuMemoryInfo");
  }
  ~Session() {
    if (memory_) ort->ReleaseMemoryInfo(memory_);
    if (session_) ort->ReleaseSession(session_);
    if (env_) ort->ReleaseEnv(env_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int64_t length() const { return shape_[1]; }

  std::vector<int64_t> run(std::vector<int64_t>& row) {
    OrtValue* input = nullptr;
    check(ort->CreateTensorWithDataAsOrtValue(memory_, row.data(), row.size() * sizeof(int64_t), shape_.data(),
                                              shape_.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &input),
          "CreateTensorWithDataAsOrtValue");
    const char* inputs[] = {"history"};
    const char* outputs[] = {"scores", "items"};
    OrtValue* answers[2] = {nullptr, nullptr};
    OrtStatus* ran = ort->Run(session_, nullptr, inputs, &input, 1, outputs, 2, answers);
    ort->ReleaseValue(input);
    check(ran, "Run");
    OrtTensorTypeAndShapeInfo* info = nullptr;
    size_t count = 0;
    int64_t* items = nullptr;
    check(ort->GetTensorTypeAndShape(answers[1], &info), "GetTensorTypeAndShape");
    check(ort->GetTensorShapeElementCount(info, &count), "GetTensorShapeElementCount");
    ort->ReleaseTensorTypeAndShapeInfo(info);
    check(ort->GetTensorMutableData(answers[1], reinterpret_cast<void**>(&items)), "GetTensorMutableData");
    std::vector<int64_t> answer(items, items + count);
    ort->ReleaseValue(answers[0]);
    ort->ReleaseValue(answers[1]);
    return answer;
  }

 private:
  OrtEnv* env_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;
  std::vector<int64_t> shape_;
};

int bench(const Args& args) {
  void* library = dlopen(args.runtime.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) throw BadInput("--runtime " + args.runtime + ": " + dlerror());
  using GetApiBase = const OrtApiBase* (*)();
  auto get_base = reinterpret_cast<GetApiBase>(dlsym(library, "OrtGetApiBase"));
  if (get_base == nullptr) throw BadInput("--runtime " + args.runtime + ": no OrtGetApiBase (not ONNX Runtime)");
  ort = get_base()->GetApi(ORT_API_VERSION);
  if (ort == nullptr)
    throw BadInput("--runtime " + args.runtime + " (" + get_base()->GetVersionString() +
                   "): older than the C API header (version " + std::to_string(ORT_API_VERSION) + ")");
  const uint64_t rss_before_load = status_bytes("VmRSS");
  std::vector<std::vector<int64_t>> answers;
  std::vector<double> samples_ms;
  unsigned threads = args.threads;
  {
    Session session(args.model, args.threads);
    const uint64_t rss_after_load = status_bytes("VmRSS");
    auto rows = read_rows(args.histories, session.length());
    for (auto& row : rows) answers.push_back(session.run(row));  // each row once: the answers (and a warm-up)
    for (unsigned r = 0; r < args.warmup; ++r) session.run(rows[r % rows.size()]);
    samples_ms.reserve(args.runs);
    for (unsigned r = 0; r < args.runs; ++r) {
      const auto start = std::chrono::steady_clock::now();
      session.run(rows[r % rows.size()]);
      samples_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("{\"runtime_version\": \"%s\", \"threads\": %u, \"runs\": %u, \"warmup\": %u, "
                "\"rss_before_load_bytes\": %llu, \"rss_after_load_bytes\": %llu, \"peak_rss_bytes\": %llu, "
                "\"samples_ms\": [",
                get_base()->GetVersionString(), threads, args.runs, args.warmup,
                static_cast<unsigned long long>(rss_before_load), static_cast<unsigned long long>(rss_after_load),
                static_cast<unsigned long long>(status_bytes("VmHWM")));
  }
  for (size_t k = 0; k < samples_ms.size(); ++k) std::printf("%s%.6f", k ? ", " : "", samples_ms[k]);
  std::printf("], \"items\": [");
  for (size_t r = 0; r < answers.size(); ++r) {
    std::printf("%s[", r ? ", " : "");
    for (size_t k = 0; k < answers[r].size(); ++k) std::printf("%s%lld", k ? ", " : "", static_cast<long long>(answers[r][k]));
    std::printf("]");
  }
  std::printf("]}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return bench(parse(argc, argv));
  } catch (const BadInput& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
