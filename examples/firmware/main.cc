// Runs the model edgepipe compiled, with exactly the ops it registered and the
// arena it measured. Everything model-specific comes from the generated headers:
//   model_data.h         g_model, g_model_len, kTensorArenaSize
//   model_op_resolver.h  edgepipe::ModelOpResolver, edgepipe::RegisterModelOps
#include <cstddef>
#include <cstdint>

#include "model_data.h"
#include "model_op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {
// TFLM needs a 16-byte-aligned arena; edgepipe sized it from the measured need.
alignas(16) uint8_t tensor_arena[kTensorArenaSize];
}  // namespace

int main() {
  tflite::InitializeTarget();

  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("model schema %d, runtime expects %d", model->version(), TFLITE_SCHEMA_VERSION);
    return 1;
  }

  static edgepipe::ModelOpResolver resolver;
  if (edgepipe::RegisterModelOps(resolver) != kTfLiteOk) return 2;

  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    MicroPrintf("arena of %u bytes is too small", static_cast<unsigned>(kTensorArenaSize));
    return 3;
  }

  // Fill the int8 input from your sensor; here, the input's zero point (a "zero" image).
  TfLiteTensor* input = interpreter.input(0);
  for (size_t i = 0; i < input->bytes; ++i) {
    input->data.int8[i] = static_cast<int8_t>(input->params.zero_point);
  }
  if (interpreter.Invoke() != kTfLiteOk) return 4;

  TfLiteTensor* output = interpreter.output(0);
  size_t best = 0;
  for (size_t i = 1; i < output->bytes; ++i) {
    if (output->data.int8[i] > output->data.int8[best]) best = i;
  }
  MicroPrintf("class %u; arena used %u of %u bytes", static_cast<unsigned>(best),
              static_cast<unsigned>(interpreter.arena_used_bytes()),
              static_cast<unsigned>(kTensorArenaSize));
  return 0;
}
