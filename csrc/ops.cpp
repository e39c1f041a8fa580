// Every fastrec operator schema, declared once. Kernels register per dispatch key next to their code
// (csrc/<family>/cpu/*.cpp, csrc/<family>/cuda/*.cu); autograd and fake (meta) kernels are registered in
// Python, one module per op family (src/fastrec/ops/), which `import fastrec` always imports before fastrec._C.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(fastrec, m) {
  // Factorization-machine second-order term (Rendle, ICDM 2010) over dense field embeddings.
  // emb [B, F, K], values [B, F] (None: all ones). reduce=True -> [B]; reduce=False -> [B, K] (NFM bi-interaction).
  m.def("fm_interaction(Tensor emb, Tensor? values, bool reduce) -> Tensor");
  // Gradients of fm_interaction: (grad_emb [B, F, K], grad_values [B, F], or an empty tensor when values is None).
  m.def("fm_interaction_backward(Tensor grad_out, Tensor emb, Tensor? values, bool reduce) -> (Tensor, Tensor)");
}

// `import fastrec._C` only has to run the registrations above: the module itself is empty (no pybind11).
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
