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
#include "model/safetensors_header.h"

namespace prefix_rl {

namespace {

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
  if (file->size_ < 8) {  // (a zero-length mapping would fail first)
    ::close(fd);
    invalid_argument(path + " is not a safetensors file (shorter than its 8-byte header length)");
  }
  // Private and writable: tensors over the mapping may be modified in place without touching the file.
  void* mapping = mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping == MAP_FAILED) invalid_argument(system_error("map", path));
  file->mapping_ = mapping;

  const auto* bytes = static_cast<const uint8_t*>(mapping);
  SafetensorsHeader header = parse_safetensors_header(bytes, file->size_, path);
  file->data_ = bytes + header.data_offset;
  file->metadata_ = std::move(header.metadata);
  for (SafetensorsEntry& entry : header.entries) {
    auto known = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& pair) { return entry.dtype == pair.first; });
    TORCH_INTERNAL_ASSERT(known != dtype_names().end(), "safetensors dtype tables disagree on ", entry.dtype);
    file->entries_.push_back({std::move(entry.name), known->second, std::move(entry.shape), entry.begin, entry.end});
  }
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
      if (!first) header += ',';
      header += json_quote(key) + ":" + json_quote(value);
      first = false;
    }
    header += "},";
  }
  int64_t offset = 0;
  for (const auto* named : order) {
    const at::Tensor& tensor = named->second;
    std::string shape;
    for (int64_t d = 0; d < tensor.dim(); ++d) {
      if (d) shape += ',';
      shape += std::to_string(tensor.size(d));
    }
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

namespace {

struct Source {
  std::shared_ptr<SafetensorsFile> file;
  const SafetensorsFile::Entry* entry;
};

// Every header checked against `parameters` (names, shapes, floating dtypes) before anything is copied, so that a bad
// checkpoint fails fast and names all that is wrong: each wanted tensor's source.
std::map<std::string, Source> checked_sources(const NamedTensors& parameters, const SafetensorsFiles& files, const std::set<std::string>& ignored) {
  std::map<std::string, const at::Tensor*> wanted;
  for (const auto& [name, tensor] : parameters) wanted[name] = &tensor;

  std::map<std::string, Source> sources;
  std::vector<std::string> extra;
  for (const auto& file : files) {
    const std::string& path = file->path();
    for (const auto& entry : file->entries()) {
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
      sources[entry.name] = {file, &entry};
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
  return sources;
}

}  // namespace

SafetensorsFiles open_safetensors(const std::vector<std::string>& paths) {
  SafetensorsFiles files;
  for (const std::string& path : paths) files.push_back(SafetensorsFile::open(path));
  return files;
}

void check_parameters(const NamedTensors& parameters, const SafetensorsFiles& files, const std::set<std::string>& ignored) {
  checked_sources(parameters, files, ignored);
}

void load_parameters(const NamedTensors& parameters, const SafetensorsFiles& files, const std::set<std::string>& ignored) {
  std::map<std::string, Source> sources = checked_sources(parameters, files, ignored);
  std::map<std::string, const at::Tensor*> wanted;
  for (const auto& [name, tensor] : parameters) wanted[name] = &tensor;
  at::NoGradGuard no_grad;
  for (const auto& [name, source] : sources) {
    check_cancelled();
    wanted[name]->copy_(source.file->tensor(*source.entry));
  }
}

}  // namespace prefix_rl
