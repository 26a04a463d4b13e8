// A safetensors file's header, validated against the file it heads, with no tensor library (SafetensorsFile builds
// on it, and native/fuzz fuzzes it on its own): the 8-byte little-endian header length, the JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, and the data section's layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace prefix_rl {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2
  std::vector<int64_t> shape;
  int64_t begin = 0;  // byte offsets into the data section
  int64_t end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in header order
  std::map<std::string, std::string> metadata;
  size_t data_offset = 0;  // where the data section starts in the file
};

// The bytes per element of a safetensors dtype name; 0 for a name the format (as read here) does not have.
int64_t safetensors_element_size(std::string_view dtype);

// Parses and checks the header of the file `bytes` [size]: a header length that fits the file (at most 100 MB),
// a JSON object, each tensor's dtype known, shape and offsets non-negative integers, its byte count equal to
// shape × element size (overflow-checked), and the tensors tiling the data section exactly (no overlap, no gap, none
// past the end). Throws prefix_rl::Error naming `path` (and the tensor at fault).
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, const std::string& path);

}  // namespace prefix_rl
