cmake_minimum_required(VERSION 3.25)
# cmake -P tests/layers/cycle_test.cmake: the layer cycle check finds a cycle
# when there is one and none when there is not (ctest: layers.graph).
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/ForkdLayerGraph.cmake)

function(expect_cycle want)
  forkd_find_layer_cycle(got ${ARGN})
  if(NOT got STREQUAL want)
    message(FATAL_ERROR "layers ${ARGN}: expected cycle '${want}', got '${got}'")
  endif()
endfunction()

# A diamond is no cycle: http1 is reached twice.
set(FORKD_LAYER_DEPS_proxy http1 http2)
set(FORKD_LAYER_DEPS_http2 http1)
set(FORKD_LAYER_DEPS_http1 "")
expect_cycle("" proxy http2 http1)

# http2 -> proxy closes proxy -> http2.
set(FORKD_LAYER_DEPS_http2 http1 proxy)
expect_cycle("proxy -> http2 -> proxy" proxy http2 http1)

# A longer one, found from a layer outside it.
set(FORKD_LAYER_DEPS_worker proxy)
set(FORKD_LAYER_DEPS_proxy upstream)
set(FORKD_LAYER_DEPS_upstream http2)
set(FORKD_LAYER_DEPS_http2 proxy)
expect_cycle("proxy -> upstream -> http2 -> proxy" worker proxy upstream http2)

# A self-dependency.
set(FORKD_LAYER_DEPS_tls tls)
expect_cycle("tls -> tls" tls)
message(STATUS "layer graph check: ok")
