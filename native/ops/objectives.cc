#include "addon.h"

namespace prefix_rl {
void register_objectives(Napi::Env env, Napi::Object exports) {}
}  // namespace prefix_rl
