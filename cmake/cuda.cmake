# VELO_CUDA=AUTO turns the CUDA backend on when nvcc is found.
set(VELO_WITH_CUDA OFF)
if(NOT VELO_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(VELO_WITH_CUDA ON)
  elseif(VELO_CUDA STREQUAL "ON")
    message(FATAL_ERROR "VELO_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
if(VELO_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # A100/A30 (80), RTX 30xx (86), RTX 40xx / L4 / L40 (89), H100/H200 (90); PTX of
    # 90 lets newer GPUs JIT-compile. -DCMAKE_CUDA_ARCHITECTURES=native builds for this GPU only.
    set(CMAKE_CUDA_ARCHITECTURES "80-real;86-real;89-real;90")
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 cannot ask nvcc for C++20
  find_package(CUDAToolkit REQUIRED)
  add_compile_definitions(VELO_WITH_CUDA=1)
endif()
message(STATUS "velollm: CUDA backend ${VELO_WITH_CUDA} (VELO_CUDA=${VELO_CUDA})")
