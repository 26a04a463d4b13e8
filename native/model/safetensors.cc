#include "model/safetensors.h"

#include <ATen/core/grad_mode.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common.h"
#include "model/json.h"

namespace prefix_rl {

namespace {

// The header is JSON of a few KB per hundred tensors; the format caps it at 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const std::vector<std::pair<const char*, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<const char*, at::ScalarType>> names = {
      {"F64", at::kDouble},
      {"F32", at::kFloat},
      {"F16", at::kHalf},
      {"BF16", at::kBFloat16},
      {"I64", at::kLong},
      {"I32", at::kInt},
      {"I16", at::kShort},
      {"I8", at::kChar},
      {"U8", at::kByte},
      {"BOOL", at::kBool},
      {"F8_E4M3", at::kFloat8_e4m3fn},
      {"F8_E5M2", at::kFloat8_e5m2},
  };
  return names;
}

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& [name, type] : dtype_names()) {
    if (type == dtype) return name;
  }
  invalid_argument(std::string("safetensors cannot store dtype ") + c10::toString(dtype));
}

std::string shape_string(const std::vector<int64_t>& shape) { return c10::str(at::IntArrayRef(shape)); }

std::string system_error(const std::string& action, const std::string& path) { return "cannot " + action + " " + path + ": " + std::strerror(errno); }

// "a, b, c and 4 more": error messages name a few tensors, not thousands.
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > kShown) out += " and " + std::to_string(names.size() - kShown) + " more";
  return out;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  // O_NONBLOCK: a FIFO or device named like a weights file must not block the open; only regular files load.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) invalid_argument(system_error("open", path));
  struct stat info;
  if (fstat(fd, &info) != 0) {
    ::close(fd);
    invalid_argument(system_error("stat", path));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    invalid_argument(path + " is not a regular file");
  }
  file->size_ = static_cast<size_t>(info.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    invalid_argument(path + " is not a safetensors file (shorter than its 8-byte header length)");
  }
  // Private and writable: tensors over the mapping may be modified in place without touching the file.
  void* mapping = mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) invalid_argument(system_error("map", path));
  file->mapping_ = mapping;

  const auto* bytes = static_cast<const uint8_t*>(mapping);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxHeaderBytes || header_size > file->size_ - 8) {
    invalid_argument(path + " is not a safetensors file (header length " + std::to_string(header_size) + " does not fit the file)");
  }
  file->data_ = bytes + 8 + header_size;
  const int64_t data_size = static_cast<int64_t>(file->size_ - 8 - header_size);
  JsonValue header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), header_size), path + " header");
  if (!header.is_object()) invalid_argument(path + ": the header is not a JSON object");

  std::set<std::string> seen;
  for (const auto& [name, value] : header.members) {
    if (!seen.insert(name).second) invalid_argument(path + ": tensor '" + name + "' appears twice in the header");
    if (name == "__metadata__") {
      if (!value.is_object()) invalid_argument(path + ": __metadata__ must be an object of strings");
      for (const auto& [key, text] : value.members) {
        if (!text.is_string()) invalid_argument(path + ": __metadata__ value '" + key + "' is not a string");
        file->metadata_[key] = text.text;
      }
      continue;
    }
    auto bad = [&](const std::string& why) { invalid_argument(path + ": tensor '" + name + "' " + why); };
    const JsonValue* dtype = value.find("dtype");
    const JsonValue* shape = value.find("shape");
    const JsonValue* offsets = value.find("data_offsets");
    if (!value.is_object() || !dtype || !shape || !offsets) bad("needs dtype, shape and data_offsets");
    Entry entry{name, at::kFloat, {}, 0, 0};
    auto known = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& pair) { return dtype->text == pair.first; });
    if (!dtype->is_string() || known == dtype_names().end()) bad("has an unsupported dtype '" + dtype->text + "'");
    entry.dtype = known->second;
    if (!shape->is_array()) bad("has a malformed shape");
    int64_t numel = 1;
    for (const JsonValue& dim : shape->items) {
      int64_t size = 0;
      if (!dim.to_uint(size)) bad("has a malformed shape");
      if (size > 0 && numel > std::numeric_limits<int64_t>::max() / size) bad("is too large");
      numel *= size;
      entry.shape.push_back(size);
    }
    if (!offsets->is_array() || offsets->items.size() != 2 || !offsets->items[0].to_uint(entry.begin) || !offsets->items[1].to_uint(entry.end) ||
        entry.begin > entry.end) {
      bad("has malformed data_offsets");
    }
    if (entry.end > data_size) bad("lies past the end of the file (is it truncated?)");
    const int64_t element_size = static_cast<int64_t>(c10::elementSize(entry.dtype));
    if (numel > std::numeric_limits<int64_t>::max() / element_size) bad("is too large");
    if (entry.end - entry.begin != numel * element_size) {
      bad("has " + std::to_string(entry.end - entry.begin) + " bytes, but shape " + shape_string(entry.shape) + " of " + dtype->text + " needs " +
          std::to_string(numel * element_size));
    }
    file->entries_.push_back(std::move(entry));
  }
  // As the reference reader requires: the tensors tile the data section exactly, with no overlap and no gap (an
  // offset shifted by one byte would otherwise load shifted, wrong weights).
  std::vector<const Entry*> by_offset;
  for (const Entry& entry : file->entries_) by_offset.push_back(&entry);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const Entry* a, const Entry* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  int64_t covered = 0;
  for (const Entry* entry : by_offset) {
    if (entry->begin < covered) invalid_argument(path + ": tensor '" + entry->name + "' overlaps the tensor before it in the data section");
    if (entry->begin > covered) {
      invalid_argument(path + ": " + std::to_string(entry->begin - covered) + " bytes before tensor '" + entry->name + "' belong to no tensor");
    }
    covered = entry->end;
  }
  if (covered != data_size)
    invalid_argument(path + ": the last " + std::to_string(data_size - covered) + " bytes of the data section belong to no tensor");
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_) munmap(mapping_, size_);
}

at::Tensor SafetensorsFile::tensor(const Entry& entry) const {
  auto options = at::TensorOptions().dtype(entry.dtype);
  void* bytes = const_cast<uint8_t*>(data_ + entry.begin);
  if (reinterpret_cast<uintptr_t>(bytes) % c10::elementSize(entry.dtype) != 0) {
    at::Tensor copy = at::empty(entry.shape, options);
    std::memcpy(copy.data_ptr(), bytes, static_cast<size_t>(entry.end - entry.begin));
    return copy;
  }
  std::shared_ptr<const SafetensorsFile> keep_mapped = shared_from_this();
  return at::from_blob(
      bytes, entry.shape, [keep_mapped](void*) {}, options);
}

void write_safetensors(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  // Widest elements first, as the safetensors library does, so that every tensor starts aligned to its element size.
  std::vector<const std::pair<std::string, at::Tensor>*> order;
  std::set<std::string> names;
  for (const auto& named : tensors) {
    if (!named.second.defined()) invalid_argument("tensor '" + named.first + "' is undefined");
    if (!names.insert(named.first).second) invalid_argument("tensor '" + named.first + "' is given twice");
    order.push_back(&named);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    size_t size_a = a->second.element_size(), size_b = b->second.element_size();
    return size_a != size_b ? size_a > size_b : a->first < b->first;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      header += (first ? "" : ",") + json_quote(key) + ":" + json_quote(value);
      first = false;
    }
    header += "},";
  }
  int64_t offset = 0;
  for (const auto* named : order) {
    const at::Tensor& tensor = named->second;
    std::string shape;
    for (int64_t d = 0; d < tensor.dim(); ++d) shape += (d ? "," : "") + std::to_string(tensor.size(d));
    int64_t bytes = static_cast<int64_t>(tensor.numel() * tensor.element_size());
    header += json_quote(named->first) + ":{\"dtype\":\"" + safetensors_dtype_name(tensor.scalar_type()) + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]},";
    offset += bytes;
  }
  if (header.back() == ',') header.pop_back();
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  const std::string partial = path + ".partial";
  FILE* out = std::fopen(partial.c_str(), "wb");
  if (!out) invalid_argument(system_error("create", partial));
  auto write = [&](const void* data, size_t size) {
    if (size > 0 && std::fwrite(data, 1, size, out) != size) {
      std::string message = system_error("write", partial);
      std::fclose(out);
      std::remove(partial.c_str());
      invalid_argument(message);
    }
  };
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  write(length, sizeof length);
  write(header.data(), header.size());
  for (const auto* named : order) {
    at::Tensor bytes = named->second.detach().to(at::kCPU).contiguous();
    write(bytes.data_ptr(), static_cast<size_t>(bytes.numel() * bytes.element_size()));
  }
  if (std::fclose(out) != 0) {
    std::remove(partial.c_str());
    invalid_argument(system_error("write", partial));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    std::string message = system_error("rename " + partial + " to", path);
    std::remove(partial.c_str());
    invalid_argument(message);
  }
}

void load_parameters(const NamedTensors& parameters, const std::vector<std::string>& files, const std::set<std::string>& ignored) {
  std::map<std::string, const at::Tensor*> wanted;
  for (const auto& [name, tensor] : parameters) wanted[name] = &tensor;

  // Check every header before copying anything, so that a bad checkpoint fails fast and names all that is wrong.
  struct Source {
    std::shared_ptr<SafetensorsFile> file;
    const SafetensorsFile::Entry* entry;
  };
  std::map<std::string, Source> sources;
  std::vector<std::string> extra;
  std::vector<std::shared_ptr<SafetensorsFile>> opened;
  for (const std::string& path : files) {
    opened.push_back(SafetensorsFile::open(path));
    for (const auto& entry : opened.back()->entries()) {
      if (ignored.count(entry.name)) continue;
      auto it = wanted.find(entry.name);
      if (it == wanted.end()) {
        extra.push_back(entry.name);
        continue;
      }
      auto previous = sources.find(entry.name);
      if (previous != sources.end()) {
        invalid_argument("tensor '" + entry.name + "' appears in both " + previous->second.file->path() + " and " + path);
      }
      std::vector<int64_t> expected = it->second->sizes().vec();
      if (entry.shape != expected) {
        invalid_argument("tensor '" + entry.name + "' in " + path + " has shape " + shape_string(entry.shape) + ", but the model expects " +
                         shape_string(expected));
      }
      if (!at::isFloatingType(entry.dtype)) {
        invalid_argument("tensor '" + entry.name + "' in " + path + " has dtype " + safetensors_dtype_name(entry.dtype) +
                         ", but model weights are floating point");
      }
      sources[entry.name] = {opened.back(), &entry};
    }
  }
  std::vector<std::string> missing;
  for (const auto& [name, tensor] : wanted) {
    if (!sources.count(name)) missing.push_back(name);
  }
  if (!missing.empty()) {
    invalid_argument("the checkpoint lacks " + std::to_string(missing.size()) + " tensor(s) the model needs: " + name_list(missing));
  }
  if (!extra.empty()) {
    invalid_argument("the checkpoint has " + std::to_string(extra.size()) + " tensor(s) the model does not use: " + name_list(extra));
  }

  at::NoGradGuard no_grad;
  for (const auto& [name, source] : sources) {
    check_cancelled();
    wanted[name]->copy_(source.file->tensor(*source.entry));
  }
}

}  // namespace prefix_rl
