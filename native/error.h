// The addon's C++ exception, with no dependency (so that the parsers can be fuzzed on their own, native/fuzz/):
// common.h turns it into a JS Error carrying its code.
#pragma once

#include <stdexcept>
#include <string>

namespace prefix_rl {

// Every JS Error the addon throws carries one of these in `err.code`.
enum class ErrorCode { InvalidArgument, Torch, Disposed, CudaUnavailable, Aborted, Distributed, Native };

// A C++ exception that becomes a JS Error with the given code.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void invalid_argument(const std::string& message) { throw Error(ErrorCode::InvalidArgument, message); }

}  // namespace prefix_rl
