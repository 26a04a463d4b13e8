// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the raw bytes.
// Reading maps the file and hands out zero-copy views; writing streams each tensor once.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace prefix_rl {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  struct Entry {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    int64_t begin;  // byte offsets into the data section
    int64_t end;
  };

  // Maps `path` read-only and validates its header; every error names the file (and the tensor, where one is at fault).
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A CPU tensor over the mapped bytes that keeps the mapping alive (copied only when the bytes are misaligned).
  // The mapping is private: writing to the tensor never changes the file.
  at::Tensor tensor(const Entry& entry) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* mapping_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device; contiguous copies are made per tensor) to `path` through a temporary file and a rename,
// so readers that still map the old file keep valid bytes. Names must be unique.
void write_safetensors(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata);

// A checkpoint's files, each mapped and its header checked once (SafetensorsFile::open), for the calls below.
using SafetensorsFiles = std::vector<std::shared_ptr<SafetensorsFile>>;
SafetensorsFiles open_safetensors(const std::vector<std::string>& paths);

// The headers of `files` against `parameters` (names, shapes, floating dtypes): an error naming every missing, extra
// or mis-shaped tensor; reads no tensor data. `parameters` may be meta tensors (shapes without memory).
void check_parameters(const NamedTensors& parameters, const SafetensorsFiles& files, const std::set<std::string>& ignored);

// Copies the tensors of `files` into `parameters` by name, converting dtype and device. Each parameter must appear
// exactly once with its shape; a missing, duplicated, extra or mis-shaped tensor is an error that names it. Names in
// `ignored` may appear in the files and are skipped.
void load_parameters(const NamedTensors& parameters, const SafetensorsFiles& files, const std::set<std::string>& ignored);

}  // namespace prefix_rl
