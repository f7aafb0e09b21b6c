# Cross-compile the C++ client for 64-bit ARM Linux with Debian's cross toolchain
# (apt-get install g++-aarch64-linux-gnu) against the aarch64 `executorch` wheel:
#
#   cmake -S runtime_demo/cpp -B BUILD-arm64 -DCMAKE_TOOLCHAIN_FILE=runtime_demo/cpp/aarch64-linux-gnu.cmake \
#         -DCMAKE_PREFIX_PATH=<the unpacked aarch64 wheel>/executorch
#
# Run the result with qemu-user (apt-get install qemu-user-static):
#   qemu-aarch64-static -cpu cortex-a76 -L /usr/aarch64-linux-gnu BUILD-arm64/recommend --model ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
if(NOT CMAKE_CXX_COMPILER)
  set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
endif()
# The target's C library and libstdc++ come from Debian's cross sysroot.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# The executorch package is an unpacked wheel outside the sysroot, found through CMAKE_PREFIX_PATH
# (its config resolves everything relative to itself, so it is not rerooted).
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
