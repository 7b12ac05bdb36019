# The layer graph check, usable from a build (ForkdLayers.cmake) and from
# `cmake -P` (tests/layers/cycle_test.cmake), so the check itself is tested.
#
# forkd_find_layer_cycle(<out> <layer>...) reads each layer's direct
# dependencies from the variable FORKD_LAYER_DEPS_<layer> (a list of layer
# names) and sets <out> to the first cycle found, as "a -> b -> a", or to ""
# when the graph is acyclic. Depth-first search: the current path is passed
# down (a nested call sees its caller's variables), finished layers are kept
# in a global property so each is explored once.

function(_forkd_layer_visit layer)
  get_property(done GLOBAL PROPERTY _FORKD_LAYERS_DONE)
  if(layer IN_LIST done)
    return()
  endif()
  if(layer IN_LIST _forkd_path)
    # A back edge: the cycle is the path from `layer` to here, closed.
    list(FIND _forkd_path ${layer} start)
    list(SUBLIST _forkd_path ${start} -1 cycle)
    list(APPEND cycle ${layer})
    list(JOIN cycle " -> " text)
    set(_forkd_cycle "${text}" PARENT_SCOPE)
    return()
  endif()
  list(APPEND _forkd_path ${layer})
  foreach(dep IN LISTS FORKD_LAYER_DEPS_${layer})
    _forkd_layer_visit(${dep})
    if(_forkd_cycle)
      set(_forkd_cycle "${_forkd_cycle}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set_property(GLOBAL APPEND PROPERTY _FORKD_LAYERS_DONE ${layer})
endfunction()

function(forkd_find_layer_cycle out)
  set_property(GLOBAL PROPERTY _FORKD_LAYERS_DONE "")
  set(_forkd_cycle "")
  set(_forkd_path "")
  foreach(layer IN LISTS ARGN)
    _forkd_layer_visit(${layer})
    if(_forkd_cycle)
      break()
    endif()
  endforeach()
  set(${out} "${_forkd_cycle}" PARENT_SCOPE)
endfunction()
