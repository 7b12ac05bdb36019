// libFuzzer target: the config file parser (config::ParseWithConfigText,
// no I/O). Property: a config the master accepts is handed to its workers
// as argv strings (config::ToArgs) and must parse back to the same
// settings there; a value that argv cannot carry (a NUL) or that does not
// survive the trip would stop every worker at boot.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed =
      ParseWithConfigText(Sources{{"--config", "fuzz.conf"}, {}}, text);
  if (!parsed.ok()) {
    // A refusal names where: the file and line, or a flag.
    if (parsed.status().message().empty()) __builtin_trap();
    return 0;
  }
  const std::vector<std::string> args = ToArgs(parsed->config);
  for (const std::string& arg : args) {
    if (arg.find('\0') != std::string::npos) __builtin_trap();
  }
  auto again = Parse(Sources{args, {}});
  if (!again.ok()) __builtin_trap();  // the master took what workers refuse
  Config expected = parsed->config;
  expected.config_file.clear();  // not handed on: workers get the values
  if (!(again->config == expected)) __builtin_trap();
  return 0;
}
