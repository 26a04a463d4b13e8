// libFuzzer target over the native parsers of untrusted bytes: the JSON reader (model/json) and the safetensors
// header check (model/safetensors_header), each on the whole input. Every input must end in a result or a
// prefix_rl::Error; a crash, a hang, a sanitizer report (ASan, UBSan) or any other exception is a finding.
// Built and run by scripts/fuzz.sh; the corpus lives in fuzz/corpus/.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "error.h"
#include "model/json.h"
#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    prefix_rl::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), "input");
  } catch (const prefix_rl::Error&) {
  }
  try {
    prefix_rl::SafetensorsHeader header = prefix_rl::parse_safetensors_header(data, size, "input");
    // What the loader does next with a header it accepted: every tensor's bytes lie inside the file.
    for (const auto& entry : header.entries) {
      if (header.data_offset + static_cast<size_t>(entry.end) > size) __builtin_trap();
    }
  } catch (const prefix_rl::Error&) {
  }
  return 0;
}
