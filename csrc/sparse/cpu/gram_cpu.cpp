// CPU kernels of the closed-form linear models (fastrec.linear): the Gram matrix X^T X of a CSR interaction matrix
// (dense, or sparse with pruning), EASE's dense solve in place (LAPACK potrf + potri, then one pass that scales and
// mirrors the inverse into the weights), and fused serving: scores = x W accumulated per user, seen items skipped,
// top-k selected, without a [users, items] score matrix.
//
// Gram: rows of G are owned by one thread each. X is transposed once (CSC: for every item, its users and the
// position of the item in each user's row); row i of G is then the sum, over the users u of item i, of x_ui times
// the rest of u's row. The dense kernel only walks items j >= i of each row (rows are sorted) and mirrors the
// upper triangle afterwards, so each product x_ui x_uj is computed once.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <omp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "common/macros.h"
#include "common/parallel.h"
#include "sparse/csr.h"

// LAPACK from the MKL inside libtorch_cpu (the extension links against it): Fortran calling convention.
extern "C" {
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
int MKL_Set_Num_Threads_Local(int nt);  // the C entry (lower-case names are the Fortran ones)
}

namespace fastrec::sparse {
namespace {

// X transposed: for item i, entries [col_ptr[i], col_ptr[i+1]) hold the users of i (ascending) and the position
// of (u, i) in X's arrays, which is where the rest of u's row (items > i) starts.
struct Transposed {
  std::vector<int64_t> col_ptr;
  std::vector<int32_t> user;
  std::vector<int64_t> pos;
};

Transposed transpose(const Csr& x) {
  Transposed t;
  t.col_ptr.assign(x.cols + 1, 0);
  const int64_t nnz = x.indptr[x.rows];
  for (int64_t p = 0; p < nnz; ++p) ++t.col_ptr[x.indices[p] + 1];
  for (int64_t i = 0; i < x.cols; ++i) t.col_ptr[i + 1] += t.col_ptr[i];
  std::vector<int64_t> fill(t.col_ptr.begin(), t.col_ptr.end() - 1);
  t.user.resize(nnz);
  t.pos.resize(nnz);
  for (int64_t u = 0; u < x.rows; ++u) {
    for (int64_t p = x.begin(u); p < x.end(u); ++p) {
      const int64_t c = fill[x.indices[p]]++;
      t.user[c] = int32_t(u);
      t.pos[c] = p;
    }
  }
  return t;
}

template <typename in_t>
inline double value_at(const in_t* v, int64_t p) {
  return v ? double(v[p]) : 1.0;
}

// Row chunks handed out dynamically: popular items (long columns) make rows of very different cost.
constexpr int64_t kRowChunk = 16;

template <typename out_t, typename in_t>
void gram_dense_kernel(const Csr& x, const Transposed& t, out_t* __restrict__ g) {
  const int64_t n = x.cols;
  const in_t* v = x.value_ptr<in_t>();
  parallel_for_chunks(n, kRowChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      out_t* __restrict__ row = g + i * n;
      std::fill(row + i, row + n, out_t(0));
      for (int64_t c = t.col_ptr[i]; c < t.col_ptr[i + 1]; ++c) {
        const int64_t p = t.pos[c];
        const int64_t q_end = x.end(t.user[c]);
        const out_t w = static_cast<out_t>(value_at(v, p));
        const int32_t* __restrict__ cols = x.indices;
        if (v == nullptr) {
          for (int64_t q = p; q < q_end; ++q) row[cols[q]] += out_t(1);
        } else {
          for (int64_t q = p; q < q_end; ++q) row[cols[q]] += w * static_cast<out_t>(v[q]);
        }
      }
    }
  });
  // Mirror the upper triangle into the lower one, tile by tile (both tiles stay in cache).
  constexpr int64_t T = 64;
  const int64_t tiles = (n + T - 1) / T;
  parallel_for_dynamic(tiles, [&](int64_t bi) {
    const int64_t i0 = bi * T, i1 = std::min(n, i0 + T);
    for (int64_t bj = 0; bj <= bi; ++bj) {
      const int64_t j0 = bj * T, j1 = std::min(n, j0 + T);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < std::min(j1, i); ++j) g[i * n + j] = g[j * n + i];
    }
  });
}

at::Tensor gram_dense_cpu(const at::Tensor& indptr, const at::Tensor& indices, const std::optional<at::Tensor>& values,
                          int64_t n_items, at::ScalarType dtype) {
  const Csr x = check_csr("gram_dense", "X", indptr, indices, values, n_items);
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble, "gram_dense: dtype must be float32 or float64, got ",
                   dtype);
  at::Tensor g = at::empty({n_items, n_items}, indptr.options().dtype(dtype));
  if (n_items == 0) return g;
  const Transposed t = transpose(x);
  const at::ScalarType in_type = x.values.defined() ? x.values.scalar_type() : dtype;
  AT_DISPATCH_FLOATING_TYPES(dtype, "gram_dense", [&] {
    using out_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(in_type, "gram_dense_values", [&] {
      gram_dense_kernel<out_t, scalar_t>(x, t, g.mutable_data_ptr<out_t>());
    });
  });
  return g;
}

// Sparse Gram with pruning: row i keeps its diagonal and the off-diagonal entries with |g_ij| >= threshold (and
// g_ij != 0); with top_m > 0, only the top_m largest |g_ij| of those (ties: lower id first). Rows are sorted by column.
template <typename out_t, typename in_t>
std::tuple<at::Tensor, at::Tensor, at::Tensor> gram_sparse_kernel(const Csr& x, const Transposed& t, double threshold,
                                                                  int64_t top_m, at::ScalarType dtype) {
  const int64_t n = x.cols;
  const in_t* v = x.value_ptr<in_t>();
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  std::vector<std::vector<int32_t>> chunk_cols(chunks);
  std::vector<std::vector<out_t>> chunk_vals(chunks);
  std::vector<int64_t> row_nnz(n);
  const int threads = at::get_num_threads();
  std::vector<std::vector<out_t>> accs(threads);
  std::vector<std::vector<int32_t>> touched_all(threads);
  std::vector<std::vector<uint8_t>> flags(threads);
  parallel_for_dynamic(chunks, [&](int64_t chunk) {
    const int tid = omp_get_thread_num();  // parallel_for_dynamic is a plain OpenMP loop
    std::vector<out_t>& acc = accs[tid];
    std::vector<uint8_t>& flag = flags[tid];
    std::vector<int32_t>& touched = touched_all[tid];
    if (acc.empty()) {
      acc.assign(n, out_t(0));
      flag.assign(n, 0);
    }
    std::vector<int32_t>& cols_out = chunk_cols[chunk];
    std::vector<out_t>& vals_out = chunk_vals[chunk];
    std::vector<int32_t> keep;
    const int64_t i0 = chunk * kRowChunk, i1 = std::min(n, i0 + kRowChunk);
    for (int64_t i = i0; i < i1; ++i) {
      touched.clear();
      for (int64_t c = t.col_ptr[i]; c < t.col_ptr[i + 1]; ++c) {
        const int64_t p = t.pos[c];
        const int64_t u_begin = x.begin(t.user[c]), u_end = x.end(t.user[c]);
        const out_t w = static_cast<out_t>(value_at(v, p));
        for (int64_t q = u_begin; q < u_end; ++q) {
          const int32_t j = x.indices[q];
          if (!flag[j]) {
            flag[j] = 1;
            acc[j] = out_t(0);
            touched.push_back(j);
          }
          acc[j] += w * static_cast<out_t>(value_at(v, q));
        }
      }
      keep.clear();
      for (const int32_t j : touched) {
        if (j != i && acc[j] != out_t(0) && std::abs(double(acc[j])) >= threshold) keep.push_back(j);
      }
      if (top_m > 0 && int64_t(keep.size()) > top_m) {
        auto better = [&](int32_t a, int32_t b) {
          const out_t sa = std::abs(acc[a]), sb = std::abs(acc[b]);
          return sa > sb || (sa == sb && a < b);
        };
        std::nth_element(keep.begin(), keep.begin() + top_m, keep.end(), better);
        keep.resize(top_m);
      }
      if (flag[i]) keep.push_back(int32_t(i));  // the diagonal, present whenever item i has a user
      std::sort(keep.begin(), keep.end());
      for (const int32_t j : keep) {
        cols_out.push_back(j);
        vals_out.push_back(acc[j]);
      }
      row_nnz[i] = int64_t(keep.size());
      for (const int32_t j : touched) flag[j] = 0;
    }
  });
  at::Tensor out_ptr = at::empty({n + 1}, at::TensorOptions().dtype(at::kLong));
  int64_t* ptr = out_ptr.mutable_data_ptr<int64_t>();
  ptr[0] = 0;
  for (int64_t i = 0; i < n; ++i) ptr[i + 1] = ptr[i] + row_nnz[i];
  at::Tensor out_cols = at::empty({ptr[n]}, at::TensorOptions().dtype(at::kInt));
  at::Tensor out_vals = at::empty({ptr[n]}, at::TensorOptions().dtype(dtype));
  int32_t* oc = out_cols.mutable_data_ptr<int32_t>();
  out_t* ov = out_vals.mutable_data_ptr<out_t>();
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t chunk = b; chunk < e; ++chunk) {
      const int64_t start = ptr[chunk * kRowChunk];
      std::copy(chunk_cols[chunk].begin(), chunk_cols[chunk].end(), oc + start);
      std::copy(chunk_vals[chunk].begin(), chunk_vals[chunk].end(), ov + start);
      std::vector<int32_t>().swap(chunk_cols[chunk]);
      std::vector<out_t>().swap(chunk_vals[chunk]);
    }
  });
  return {out_ptr, out_cols, out_vals};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gram_sparse_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                                                               const std::optional<at::Tensor>& values, int64_t n_items,
                                                               double threshold, int64_t top_m, at::ScalarType dtype) {
  const Csr x = check_csr("gram_sparse", "X", indptr, indices, values, n_items);
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble, "gram_sparse: dtype must be float32 or float64, got ",
                   dtype);
  TORCH_CHECK_VALUE(std::isfinite(threshold) && threshold >= 0, "gram_sparse: threshold must be finite and >= 0, got ",
                    threshold);
  TORCH_CHECK_VALUE(top_m >= 0, "gram_sparse: top_m must be >= 0 (0: no limit), got ", top_m);
  const Transposed t = transpose(x);
  const at::ScalarType in_type = x.values.defined() ? x.values.scalar_type() : dtype;
  std::tuple<at::Tensor, at::Tensor, at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(dtype, "gram_sparse", [&] {
    using out_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(in_type, "gram_sparse_values", [&] {
      out = gram_sparse_kernel<out_t, scalar_t>(x, t, threshold, top_m, dtype);
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------- dense EASE solve
inline void potrf(int n, float* a, int* info) { spotrf_("L", &n, a, &n, info); }
inline void potrf(int n, double* a, int* info) { dpotrf_("L", &n, a, &n, info); }
inline void potri(int n, float* a, int* info) { spotri_("L", &n, a, &n, info); }
inline void potri(int n, double* a, int* info) { dpotri_("L", &n, a, &n, info); }

// a holds P = G^-1 in its row-major upper triangle (the Fortran lower triangle potri wrote). Overwrites a with
// B = I - P diag(1/diag(P)): b_ij = -p_ij / p_jj off the diagonal, 0 on it, reading each p_ij once.
template <typename scalar_t>
void ease_weights_from_upper(scalar_t* a, int64_t n) {
  std::vector<scalar_t> inv_diag(n);
  for (int64_t i = 0; i < n; ++i) inv_diag[i] = scalar_t(1) / a[i * n + i];
  constexpr int64_t T = 64;
  const int64_t tiles = (n + T - 1) / T;
  // Task bi owns the upper tiles (bi, bj >= bi) and their mirrors (bj, bi): no two tasks write the same element.
  parallel_for_dynamic(tiles, [&](int64_t bi) {
    const int64_t i0 = bi * T, i1 = std::min(n, i0 + T);
    for (int64_t bj = bi; bj < tiles; ++bj) {
      const int64_t j0 = bj * T, j1 = std::min(n, j0 + T);
      for (int64_t i = i0; i < i1; ++i) {
        scalar_t* __restrict__ row = a + i * n;
        for (int64_t j = std::max(j0, i + 1); j < j1; ++j) {
          const scalar_t p = row[j];
          row[j] = -p * inv_diag[j];
          a[j * n + i] = -p * inv_diag[i];
        }
        if (i >= j0 && i < j1) row[i] = scalar_t(0);
      }
    }
  });
}

void ease_dense_cpu(at::Tensor& gram, double l2) {
  TORCH_CHECK_VALUE(gram.dim() == 2 && gram.size(0) == gram.size(1), "ease_dense_: gram must be square, got shape ",
                    gram.sizes());
  TORCH_CHECK_TYPE(gram.scalar_type() == at::kFloat || gram.scalar_type() == at::kDouble,
                   "ease_dense_: gram must be float32 or float64, got ", gram.scalar_type());
  TORCH_CHECK_VALUE(gram.is_contiguous() && gram.device().is_cpu(), "ease_dense_: gram must be a contiguous CPU tensor");
  TORCH_CHECK_VALUE(std::isfinite(l2) && l2 > 0, "ease_dense_: l2 must be finite and > 0, got ", l2);
  const int64_t n = gram.size(0);
  TORCH_CHECK_VALUE(n < std::numeric_limits<int>::max(), "ease_dense_: n=", n, " exceeds LAPACK's 32-bit sizes");
  if (n == 0) return;
  // MKL runs on torch's intra-op thread count (not its own default): set per call, deliberately.
  const int previous_threads = MKL_Set_Num_Threads_Local(at::get_num_threads());
  AT_DISPATCH_FLOATING_TYPES(gram.scalar_type(), "ease_dense_", [&] {
    scalar_t* a = gram.mutable_data_ptr<scalar_t>();
    for (int64_t i = 0; i < n; ++i) a[i * n + i] += static_cast<scalar_t>(l2);
    int info = 0;
    potrf(int(n), a, &info);
    if (info == 0) potri(int(n), a, &info);
    MKL_Set_Num_Threads_Local(previous_threads);
    TORCH_CHECK_VALUE(info == 0, "ease_dense_: G + l2*I is not positive definite (LAPACK info=", info,
                      "); the Gram matrix has negative or non-finite entries, or l2=", l2,
                      " is too small for this dtype: increase l2 or use float64");
    ease_weights_from_upper(a, n);
  });
}

// ---------------------------------------------------------------------------------------------- fused serving top-k
// The k >= 1 best (score desc, id asc) of the candidates offered to it, kept in a heap whose front is the worst.
template <typename acc_t>
struct TopK {
  struct Entry {
    acc_t score;
    int64_t id;
  };
  static bool better(const Entry& a, const Entry& b) { return a.score > b.score || (a.score == b.score && a.id < b.id); }
  int64_t k;
  std::vector<Entry> heap;

  explicit TopK(int64_t k_) : k(k_) { heap.reserve(k_); }
  bool full() const { return int64_t(heap.size()) == k; }
  // Whether a candidate (score, id) would enter.
  bool admits(acc_t score, int64_t id) const { return !full() || better(Entry{score, id}, heap.front()); }
  void offer(acc_t score, int64_t id) {
    if (!full()) {
      heap.push_back({score, id});
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(Entry{score, id}, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = {score, id};
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  // Writes the list best first, padding with (-inf, -1) when fewer than k candidates existed; empties the heap.
  template <typename out_t>
  void write(out_t* scores, int64_t* ids) {
    std::sort_heap(heap.begin(), heap.end(), better);
    for (int64_t r = 0; r < k; ++r) {
      const bool have = r < int64_t(heap.size());
      scores[r] = have ? static_cast<out_t>(heap[r].score) : -std::numeric_limits<out_t>::infinity();
      ids[r] = have ? heap[r].id : -1;
    }
    heap.clear();
  }
};

void check_topk_args(const char* op, int64_t k, int64_t n) {
  TORCH_CHECK_VALUE(k >= 0 && k <= n, op, ": k must be in [0, n_items=", n, "], got ", k);
}

// Scores of one user into acc (dense W rows), then the top-k of acc skipping the user's own items if asked.
template <typename w_t, typename acc_t, typename in_t>
void topk_dense_kernel(const w_t* w, int64_t n, const Csr& x, int64_t k, bool exclude_seen, w_t* out_scores,
                       int64_t* out_ids) {
  const in_t* v = x.value_ptr<in_t>();
  const int64_t grain = std::max<int64_t>(1, kFastrecMinWorkPerThread / std::max<int64_t>(1, n));
  at::parallel_for(0, x.rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(n);
    TopK<acc_t> top(k);
    for (int64_t u = begin; u < end; ++u) {
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t p = x.begin(u); p < x.end(u); ++p) {
        const acc_t xv = static_cast<acc_t>(value_at(v, p));
        const w_t* __restrict__ row = w + int64_t(x.indices[p]) * n;
        acc_t* __restrict__ a = acc.data();
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) a[j] += xv * static_cast<acc_t>(row[j]);
      }
      int64_t seen = x.begin(u);
      const int64_t seen_end = exclude_seen ? x.end(u) : seen;
      for (int64_t j = 0; j < n; ++j) {
        if (seen < seen_end && x.indices[seen] == j) {
          ++seen;
          continue;
        }
        if (!top.full() || acc[j] > top.heap.front().score) top.offer(acc[j], j);
      }
      top.write(out_scores + u * k, out_ids + u * k);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> csr_topk_dense_cpu(const at::Tensor& weights, const at::Tensor& indptr,
                                                      const at::Tensor& indices, const std::optional<at::Tensor>& values,
                                                      int64_t k, bool exclude_seen) {
  TORCH_CHECK_VALUE(weights.dim() == 2 && weights.size(0) == weights.size(1),
                    "csr_topk_dense: weights must be square [n_items, n_items], got shape ", weights.sizes());
  TORCH_CHECK_TYPE(weights.scalar_type() == at::kFloat || weights.scalar_type() == at::kDouble,
                   "csr_topk_dense: weights must be float32 or float64, got ", weights.scalar_type());
  TORCH_CHECK_VALUE(weights.is_contiguous() && weights.device().is_cpu(),
                    "csr_topk_dense: weights must be a contiguous CPU tensor");
  const int64_t n = weights.size(0);
  const Csr x = check_csr("csr_topk_dense", "X", indptr, indices, values, n);
  check_topk_args("csr_topk_dense", k, n);
  at::Tensor scores = at::empty({x.rows, k}, weights.options());
  at::Tensor ids = at::empty({x.rows, k}, weights.options().dtype(at::kLong));
  if (k == 0) return {scores, ids};
  const at::ScalarType in_type = x.values.defined() ? x.values.scalar_type() : weights.scalar_type();
  AT_DISPATCH_FLOATING_TYPES(weights.scalar_type(), "csr_topk_dense", [&] {
    using w_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(in_type, "csr_topk_dense_values", [&] {
      topk_dense_kernel<w_t, at::opmath_type<w_t>, scalar_t>(weights.const_data_ptr<w_t>(), n, x, k, exclude_seen,
                                                             scores.mutable_data_ptr<w_t>(),
                                                             ids.mutable_data_ptr<int64_t>());
    });
  });
  return {scores, ids};
}

// Sparse W (CSR, row i = the weights from item i to every item j): a sparse accumulator per thread; items no row
// reaches score 0 and compete too (in id order), so the result equals the dense computation's.
template <typename w_t, typename acc_t, typename in_t>
void topk_sparse_kernel(const Csr& w, const Csr& x, int64_t k, bool exclude_seen, w_t* out_scores, int64_t* out_ids) {
  const int64_t n = w.cols;
  const in_t* v = x.value_ptr<in_t>();
  const w_t* wv = w.value_ptr<w_t>();
  at::parallel_for(0, x.rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(n, acc_t(0));
    std::vector<int64_t> stamp(n, -1);
    std::vector<int32_t> touched;
    TopK<acc_t> top(k);
    for (int64_t u = begin; u < end; ++u) {
      touched.clear();
      for (int64_t p = x.begin(u); p < x.end(u); ++p) {
        const acc_t xv = static_cast<acc_t>(value_at(v, p));
        const int64_t i = x.indices[p];
        for (int64_t q = w.begin(i); q < w.end(i); ++q) {
          const int32_t j = w.indices[q];
          if (stamp[j] != u) {
            stamp[j] = u;
            acc[j] = acc_t(0);
            touched.push_back(j);
          }
          acc[j] += xv * static_cast<acc_t>(wv ? wv[q] : w_t(1));
        }
      }
      const int32_t* seen_begin = x.indices + x.begin(u);
      const int32_t* seen_end = exclude_seen ? x.indices + x.end(u) : seen_begin;
      auto is_seen = [&](int32_t j) { return std::binary_search(seen_begin, seen_end, j); };
      for (const int32_t j : touched) {
        if (top.admits(acc[j], j) && !is_seen(j)) top.offer(acc[j], j);
      }
      // Items with score 0 that no weight reached, in increasing id order, while one could still enter.
      const int32_t* s = seen_begin;
      for (int64_t j = 0; j < n && top.admits(acc_t(0), j); ++j) {
        while (s < seen_end && *s < j) ++s;
        if (stamp[j] == u || (s < seen_end && *s == j)) continue;
        top.offer(acc_t(0), j);
      }
      top.write(out_scores + u * k, out_ids + u * k);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> csr_topk_sparse_cpu(const at::Tensor& w_indptr, const at::Tensor& w_indices,
                                                       const at::Tensor& w_values, const at::Tensor& indptr,
                                                       const at::Tensor& indices,
                                                       const std::optional<at::Tensor>& values, int64_t k,
                                                       bool exclude_seen) {
  const int64_t n = w_indptr.numel() - 1;
  const Csr w = check_csr("csr_topk_sparse", "weights", w_indptr, w_indices, w_values, n);
  const Csr x = check_csr("csr_topk_sparse", "X", indptr, indices, values, n);
  check_topk_args("csr_topk_sparse", k, n);
  at::Tensor scores = at::empty({x.rows, k}, w_values.options());
  at::Tensor ids = at::empty({x.rows, k}, w_values.options().dtype(at::kLong));
  if (k == 0) return {scores, ids};
  const at::ScalarType in_type = x.values.defined() ? x.values.scalar_type() : w_values.scalar_type();
  AT_DISPATCH_FLOATING_TYPES(w_values.scalar_type(), "csr_topk_sparse", [&] {
    using w_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(in_type, "csr_topk_sparse_values", [&] {
      topk_sparse_kernel<w_t, at::opmath_type<w_t>, scalar_t>(w, x, k, exclude_seen, scores.mutable_data_ptr<w_t>(),
                                                              ids.mutable_data_ptr<int64_t>());
    });
  });
  return {scores, ids};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrec, CPU, m) {
  m.impl("gram_dense", &gram_dense_cpu);
  m.impl("gram_sparse", &gram_sparse_cpu);
  m.impl("ease_dense_", &ease_dense_cpu);
  m.impl("csr_topk_dense", &csr_topk_dense_cpu);
  m.impl("csr_topk_sparse", &csr_topk_sparse_cpu);
}

}  // namespace fastrec::sparse
