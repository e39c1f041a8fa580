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

  // One layer of xDeepFM's CIN without the outer-product tensor (csrc/interaction/cin.h): x0 [B, K, F],
  // x_prev [B, K, H_in] (None: the first layer, x_prev = x0), weight [H_out, H_in, F] -> [B, K, H_out].
  m.def("cin_layer(Tensor? x_prev, Tensor x0, Tensor weight, Tensor? bias, str activation) -> Tensor");
  // (grad_x_prev, or empty when x_prev is None; grad_x0; grad_weight; grad_bias, or empty without bias).
  m.def(
      "cin_layer_backward(Tensor grad_out, Tensor out, Tensor? x_prev, Tensor x0, Tensor weight, bool has_bias, "
      "str activation) -> (Tensor, Tensor, Tensor, Tensor)");

  // Field-aware FM over x [B, F, F, K] (x[b, i, j]: field i's vector for field j), values [B, F] or None;
  // reduce=True -> [B], else [B, F (F - 1) / 2] per pair i < j (csrc/interaction/pairwise.h).
  m.def("ffm_interaction(Tensor x, Tensor? values, bool reduce) -> Tensor");
  m.def("ffm_interaction_backward(Tensor grad_out, Tensor x, Tensor? values, bool reduce) -> (Tensor, Tensor)");
  // DLRM dot interaction: dense [B, D], sparse [B, S, D] -> [B, D + (S + 1) S / 2] (pairs j < i, or j <= i).
  m.def("dot_interaction(Tensor dense, Tensor sparse, bool self_interaction, bool concat_dense) -> Tensor");
  m.def(
      "dot_interaction_backward(Tensor grad_out, Tensor dense, Tensor sparse, bool self_interaction, "
      "bool concat_dense) -> (Tensor, Tensor)");
  // libFM's FM over a CSR batch (csrc/interaction/sparse_fm.h) -> [B].
  m.def("sparse_fm(Tensor values, Tensor col_indices, Tensor row_offsets, Tensor w0, Tensor w, Tensor V) -> Tensor");
  // (grad_w0 [1], touched feature ids [U] ascending int64, their grad_w [U], their grad_V [U, k]).
  m.def(
      "sparse_fm_backward(Tensor grad_out, Tensor values, Tensor col_indices, Tensor row_offsets, Tensor w, "
      "Tensor V) -> (Tensor, Tensor, Tensor, Tensor)");

  // Table-batched embedding bag over one weight buffer; layout (and per-table pooling) in
  // csrc/embedding/embedding_bag.h. Returns float32 [B, sum_f D_f].
  m.def(
      "embedding_bag_forward(Tensor weights, int[] table_layout, int[] feature_tables, Tensor indices, "
      "Tensor offsets, Tensor? per_sample_weights) -> Tensor");
  // Row-sparse gradient: (touched global row ids [U] ascending, their aggregated gradients, flat float32).
  m.def(
      "embedding_bag_backward_sparse(Tensor grad_output, int[] table_layout, int[] feature_tables, "
      "Tensor indices, Tensor offsets, Tensor? per_sample_weights) -> (Tensor, Tensor)");
  // Gradient with respect to per_sample_weights: for index i of bag (f, b), <grad_output[b, cols of f], row of i>,
  // divided by the bag's length under mean pooling. float32 [len(indices)].
  m.def(
      "embedding_bag_backward_per_sample_weights(Tensor grad_output, Tensor weights, int[] table_layout, "
      "int[] feature_tables, Tensor indices, Tensor offsets) -> Tensor");
  // Fused sparse optimizer step, in place on weights and optimizer state (optimizer: 0 SGD, 1 Adagrad,
  // 2 row-wise Adagrad, 3 Adam on the touched rows (lazy), 4 Adam on every row of every table, the untouched ones
  // with a zero gradient; state1/state2 empty where the optimizer keeps none).
  m.def(
      "embedding_bag_backward_fused(Tensor grad_output, Tensor(a!) weights, Tensor(b!) state1, Tensor(c!) state2, "
      "int[] table_layout, int[] feature_tables, Tensor indices, Tensor offsets, Tensor? per_sample_weights, "
      "int optimizer, float lr, float eps, float beta1, float beta2, float weight_decay, int step) -> ()");

  // Closed-form linear models (csrc/sparse/). X is a CSR matrix: indptr int64, indices int32 (strictly increasing
  // per row, in [0, n_items)), values float32/float64 or None (all ones).
  // G = X^T X as a dense symmetric [n_items, n_items] matrix of `dtype`.
  m.def("gram_dense(Tensor indptr, Tensor indices, Tensor? values, int n_items, ScalarType dtype) -> Tensor");
  // G = X^T X as CSR (indptr, indices, values): row i keeps g_ii and the off-diagonal g_ij != 0 with
  // |g_ij| >= threshold, at most top_m of them (the largest |g_ij|; 0: no limit).
  m.def(
      "gram_sparse(Tensor indptr, Tensor indices, Tensor? values, int n_items, float threshold, int top_m, "
      "ScalarType dtype) -> (Tensor, Tensor, Tensor)");
  // EASE in place: gram (G) becomes B = I - P diag(1/diag(P)), P = (G + l2 I)^-1 (Cholesky inverse, LAPACK).
  m.def("ease_dense_(Tensor(a!) gram, float l2) -> ()");
  // Per row u of X: the top-k items of x_u W (W dense [n, n]) by (score desc, id asc), skipping x_u's own items
  // when exclude_seen; (scores [U, k], ids int64 [U, k]), padded with (-inf, -1).
  m.def(
      "csr_topk_dense(Tensor weights, Tensor indptr, Tensor indices, Tensor? values, int k, bool exclude_seen) "
      "-> (Tensor, Tensor)");
  // The same with W sparse (CSR [n, n]: w_indptr, w_indices, w_values).
  m.def(
      "csr_topk_sparse(Tensor w_indptr, Tensor w_indices, Tensor w_values, Tensor indptr, Tensor indices, "
      "Tensor? values, int k, bool exclude_seen) -> (Tensor, Tensor)");
  // Incomplete LDL^T of a symmetric matrix given by its lower triangle in CSC (float64, rows sorted, diagonal
  // first): (L strictly lower in CSC: indptr, indices, values; d). Per column, at most max_col_nnz entries of L,
  // those with |w_ik| >= drop_tol * sqrt(d_k a_ii).
  m.def(
      "incomplete_ldl(Tensor indptr, Tensor indices, Tensor values, int max_col_nnz, float drop_tol) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
  // W = D^-1/2 L^-1 (approximately, sparse) for L unit lower triangular given by its strictly lower part in CSC:
  // returned as CSR (rows r, columns j <= r) with at most max_col_nnz entries per column and max_row_nnz per row.
  m.def(
      "unit_lower_inverse(Tensor indptr, Tensor indices, Tensor values, Tensor d, int max_col_nnz, "
      "int max_row_nnz, float drop_tol) -> (Tensor, Tensor, Tensor)");
}

// `import fastrec._C` only has to run the registrations above: the module itself is empty (no pybind11).
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
