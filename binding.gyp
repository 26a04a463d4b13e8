# node-gyp entry point. `npm install` runs node-gyp-build, which loads a prebuilt binary when one matches and
# otherwise runs `node-gyp rebuild` on this file. The addon is a CMake project (it links libtorch through
# TorchConfig.cmake), so this target only delegates: it runs scripts/build-native.mjs, which finds libtorch and
# builds with cmake-js into build/Release/prefix_rl.node, where node-gyp-build looks.
{
  "targets": [
    {
      "target_name": "prefix_rl",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(PRODUCT_DIR)/prefix_rl.node"],
          "action": ["node", "scripts/build-native.mjs"]
        }
      ]
    }
  ]
}
