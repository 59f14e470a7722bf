# Project-wide warning and sanitizer flags, applied through the af_warnings interface target so
# generated code (protobuf) can opt out.
add_library(af_warnings INTERFACE)
target_compile_options(af_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
  -Woverloaded-virtual -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  # GCC 12 reports false -Wrestrict/-Wmaybe-uninitialized inside libstdc++ string code (GCC
  # PR105329); -Wnull-dereference is left off for the same reason in grpc++ (call_op_set.h) and
  # CLI11 (StringTools.hpp) headers, where SYSTEM includes do not silence it.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized -Wno-restrict>)
if(AF_WERROR)
  target_compile_options(af_warnings INTERFACE -Werror)
endif()

add_compile_options(-fno-omit-frame-pointer -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE)
if(AF_SANITIZE)
  add_compile_options(-fsanitize=${AF_SANITIZE} -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${AF_SANITIZE})
endif()
