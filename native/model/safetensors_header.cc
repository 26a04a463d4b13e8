#include "model/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <set>

#include "error.h"
#include "model/json.h"

namespace prefix_rl {
namespace {

// The header is JSON of a few KB per hundred tensors; the format caps it at 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

int64_t safetensors_element_size(std::string_view dtype) {
  static const std::map<std::string_view, int64_t> sizes = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},     {"I32", 4},
                                                            {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size, const std::string& path) {
  if (size < 8) invalid_argument(path + " is not a safetensors file (shorter than its 8-byte header length)");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderBytes || header_size > size - 8) {
    invalid_argument(path + " is not a safetensors file (header length " + std::to_string(header_size) + " does not fit the file)");
  }
  SafetensorsHeader out;
  out.data_offset = 8 + static_cast<size_t>(header_size);
  const int64_t data_size = static_cast<int64_t>(size - out.data_offset);
  JsonValue header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_size), path + " header");
  if (!header.is_object()) invalid_argument(path + ": the header is not a JSON object");

  std::set<std::string> seen;
  for (const auto& member : header.members) {
    const std::string& name = member.first;
    const JsonValue& value = member.second;
    if (!seen.insert(name).second) invalid_argument(path + ": tensor '" + name + "' appears twice in the header");
    if (name == "__metadata__") {
      if (!value.is_object()) invalid_argument(path + ": __metadata__ must be an object of strings");
      for (const auto& [key, text] : value.members) {
        if (!text.is_string()) invalid_argument(path + ": __metadata__ value '" + key + "' is not a string");
        out.metadata[key] = text.text;
      }
      continue;
    }
    auto bad = [&](const std::string& why) { invalid_argument(path + ": tensor '" + name + "' " + why); };
    const JsonValue* dtype = value.find("dtype");
    const JsonValue* shape = value.find("shape");
    const JsonValue* offsets = value.find("data_offsets");
    if (!value.is_object() || !dtype || !shape || !offsets) bad("needs dtype, shape and data_offsets");
    SafetensorsEntry entry{name, dtype->text, {}, 0, 0};
    const int64_t element_size = dtype->is_string() ? safetensors_element_size(dtype->text) : 0;
    if (element_size == 0) bad("has an unsupported dtype '" + dtype->text + "'");
    if (!shape->is_array()) bad("has a malformed shape");
    int64_t numel = 1;
    for (const JsonValue& dim : shape->items) {
      int64_t extent = 0;
      if (!dim.to_uint(extent)) bad("has a malformed shape");
      if (extent > 0 && numel > std::numeric_limits<int64_t>::max() / extent) bad("is too large");
      numel *= extent;
      entry.shape.push_back(extent);
    }
    if (!offsets->is_array() || offsets->items.size() != 2 || !offsets->items[0].to_uint(entry.begin) || !offsets->items[1].to_uint(entry.end) ||
        entry.begin > entry.end) {
      bad("has malformed data_offsets");
    }
    if (entry.end > data_size) bad("lies past the end of the file (is it truncated?)");
    if (numel > std::numeric_limits<int64_t>::max() / element_size) bad("is too large");
    if (entry.end - entry.begin != numel * element_size) {
      bad("has " + std::to_string(entry.end - entry.begin) + " bytes, but shape " + shape_string(entry.shape) + " of " + entry.dtype + " needs " +
          std::to_string(numel * element_size));
    }
    out.entries.push_back(std::move(entry));
  }
  // As the reference reader requires: the tensors tile the data section exactly, with no overlap and no gap (an
  // offset shifted by one byte would otherwise load shifted, wrong weights).
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& entry : out.entries) by_offset.push_back(&entry);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  int64_t covered = 0;
  for (const SafetensorsEntry* entry : by_offset) {
    if (entry->begin < covered) invalid_argument(path + ": tensor '" + entry->name + "' overlaps the tensor before it in the data section");
    if (entry->begin > covered) {
      invalid_argument(path + ": " + std::to_string(entry->begin - covered) + " bytes before tensor '" + entry->name + "' belong to no tensor");
    }
    covered = entry->end;
  }
  if (covered != data_size) {
    invalid_argument(path + ": the last " + std::to_string(data_size - covered) + " bytes of the data section belong to no tensor");
  }
  return out;
}

}  // namespace prefix_rl
