// A small JSON reader for the one JSON document the native side reads itself: the header of a safetensors file.
// Full JSON syntax (RFC 8259); numbers keep their text so that 64-bit byte offsets stay exact.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefix_rl {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text;                                        // a string's value, or a number's literal
  std::vector<JsonValue> items;                            // an array's elements
  std::vector<std::pair<std::string, JsonValue>> members;  // an object's members, in document order

  bool is_object() const { return kind == Kind::Object; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_string() const { return kind == Kind::String; }
  // The member named `key`, or nullptr.
  const JsonValue* find(std::string_view key) const;
  // Stores a non-negative integer number (below 2^63) in `out`; false for any other value.
  bool to_uint(int64_t& out) const;
};

// Parses a whole document; throws prefix_rl::Error (invalid argument) naming `what` and the byte offset.
JsonValue parse_json(std::string_view text, const std::string& what);

// `value` as a JSON string literal, quotes included.
std::string json_quote(std::string_view value);

}  // namespace prefix_rl
