// Test helper: AWQ / GPTQ checkpoint directories made from TinyStories-656K's real weights,
// quantized here (RTN, fp16 scales) and packed by the test-side packers (tests/prequant_pack.h),
// beside a dense twin holding the same dequantized weights.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace tessera::test {

// *_proj layers of DIR/quant left unquantized, as a checkpoint's modules_to_not_convert are.
struct NotConverted {
  std::vector<std::string> dense;   // layer prefixes written as a dense .weight
  std::vector<std::string> listed;  // quantization_config.modules_to_not_convert
  std::vector<std::string> excluded;  // quantization_config.dynamic "-:" patterns (GPTQModel)
};

// Writes DIR/quant (format "awq" | "gptq" | "gptq_v2", config.json with its
// quantization_config) and DIR/dense (the dequantized weights, no quantization_config).
void write_prequant_checkpoints(const std::filesystem::path& dir, const std::string& format,
                                int64_t group, bool act_order, const NotConverted& nc = {});

}  // namespace tessera::test
