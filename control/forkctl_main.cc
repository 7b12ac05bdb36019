// forkctl: the admin CLI for forkd (see control/forkctl_args.h for usage).
#include <iostream>
#include <string>
#include <vector>

#include "control/forkctl.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return forkd::control::RunForkctl(args, std::cout, std::cerr);
}
