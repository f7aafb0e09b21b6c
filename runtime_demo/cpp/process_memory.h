// The memory a client reports (both native clients include it: recommend.cpp for the .pte,
// onnx/bench_onnx.cpp for the .onnx), so the two processes' figures are read the same way.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

// VmRSS / VmHWM of this process from /proc/self/status, in bytes (0 where there is no /proc).
inline uint64_t status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(status, line))
    if (line.rfind(prefix, 0) == 0) return std::strtoull(line.c_str() + prefix.size(), nullptr, 10) * 1024;
  return 0;
}
