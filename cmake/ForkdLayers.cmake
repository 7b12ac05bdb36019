# Each folder of server/ is one library, forkd_<folder>, that declares the
# folders it depends on (server/README.md draws the picture):
#
#   forkd_layer(<folder> [SOURCES <file>...] [DEPS <folder>...]
#               [LIBS <external target>...])
#
# A folder with no sources is an INTERFACE library (headers only). DEPS are
# linked PUBLIC, so a layer sees what its dependencies expose. Two checks keep
# the graph honest:
#   - forkd_check_layers(), called once every folder is declared, stops the
#     configure step on a cycle (static libraries would link one silently);
#   - the `layers` test (scripts/check_layer_includes.py) fails when a file
#     includes a header of a folder its layer does not declare.
# forkd_core links every layer: what the binaries and the tests use.

include(${CMAKE_CURRENT_LIST_DIR}/ForkdLayerGraph.cmake)

function(forkd_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  set(target forkd_${name})
  if(L_SOURCES)
    add_library(${target} STATIC ${L_SOURCES})
    set(scope PUBLIC)
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  endif()
  target_link_libraries(${target} ${scope} forkd_base)
  foreach(dep IN LISTS L_DEPS)
    target_link_libraries(${target} ${scope} forkd_${dep})
  endforeach()
  if(L_LIBS)
    target_link_libraries(${target} ${scope} ${L_LIBS})
  endif()
  set_property(GLOBAL APPEND PROPERTY FORKD_LAYERS ${name})
  set_property(GLOBAL PROPERTY FORKD_LAYER_DEPS_${name} "${L_DEPS}")
  target_link_libraries(forkd_core INTERFACE ${target})
endfunction()

# Fails the configure step on a cycle or on a dependency that names no
# layer, and writes ${CMAKE_BINARY_DIR}/forkd_layers.txt ("folder: deps"
# per line) for the include check.
function(forkd_check_layers)
  get_property(layers GLOBAL PROPERTY FORKD_LAYERS)
  set(listing "")
  foreach(layer IN LISTS layers)
    get_property(deps GLOBAL PROPERTY FORKD_LAYER_DEPS_${layer})
    foreach(dep IN LISTS deps)
      if(NOT dep IN_LIST layers)
        message(FATAL_ERROR "layer ${layer} depends on ${dep}, which is not a layer")
      endif()
    endforeach()
    set(FORKD_LAYER_DEPS_${layer} "${deps}")
    list(JOIN deps " " text)
    string(APPEND listing "${layer}: ${text}\n")
  endforeach()
  forkd_find_layer_cycle(cycle ${layers})
  if(cycle)
    message(FATAL_ERROR "server/ layers form a cycle: ${cycle}")
  endif()
  file(WRITE ${CMAKE_BINARY_DIR}/forkd_layers.txt "${listing}")
endfunction()
