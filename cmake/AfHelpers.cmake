# af_layer(NAME DEPS ...): one static library per src/ folder, built from every non-test .cc in it.
# Unit tests (*_test.cc beside the code) become one gtest binary, NAME_test, registered with ctest.
function(af_layer name)
  cmake_parse_arguments(ARG "" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cc)
  file(GLOB mains CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_main.cc
                                    ${CMAKE_CURRENT_SOURCE_DIR}/*_fuzz.cc)
  if(tests)
    list(REMOVE_ITEM srcs ${tests})
  endif()
  if(mains)
    list(REMOVE_ITEM srcs ${mains})
  endif()
  add_library(af_${name} STATIC ${srcs})
  target_include_directories(af_${name} PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(af_${name} PUBLIC ${ARG_DEPS} PRIVATE af_warnings)
  if(AF_BUILD_TESTS AND tests)
    add_executable(${name}_test ${tests})
    target_link_libraries(${name}_test PRIVATE af_${name} ${ARG_TEST_DEPS} GTest::gtest_main
                                               GTest::gmock af_warnings)
    gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
  endif()
endfunction()
