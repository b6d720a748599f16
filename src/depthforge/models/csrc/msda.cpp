// Multi-scale deformable attention's sampling on the CPU, fused: each query's bilinear samples are weighted and
// summed as they are read, so the [N·heads, D, Q, points] sample tensors of the PyTorch path are never written.
// Follows Deformable DETR's CUDA kernel (fundamentalvision/Deformable-DETR, ms_deform_im2col_cuda.cuh): the same
// arithmetic, grid_sample's bilinear rule with zero padding and align_corners=False (pixel x = loc_x * W - 0.5), a
// point outside (-1, W) × (-1, H) skipped, the same gradients. One task per (batch, head): each task writes only
// its own slices of the outputs and gradients, so no atomics are needed.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

struct Dims {
  int64_t N, S, H, D, Q, L, P;
  const int64_t* shapes;  // [L, 2]: h, w
  const int64_t* starts;  // [L]
};

// The four corners of one sampling point: rows of the value (a row of zeros where a corner is outside the map,
// so every point takes the same branch-free path), bilinear weights and their derivatives by x and y (pixels).
template <typename T>
struct Point {
  int64_t row[4];  // corner's row in the level (y * w + x), or -1 outside
  T weight[4], dx[4], dy[4];
};

// Point (x, y), in pixels, on an h×w level; false when it is outside (-1, w) × (-1, h) (no corner inside).
template <typename T>
inline bool bilinear(T x, T y, int64_t h, int64_t w, Point<T>& p) {
  if (!(x > -1 && y > -1 && x < w && y < h)) return false;
  const T x0 = std::floor(x), y0 = std::floor(y), fx = x - x0, fy = y - y0;
  const int64_t ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
  const bool inx[2] = {ix >= 0, ix + 1 < w}, iny[2] = {iy >= 0, iy + 1 < h};
  const T wx[2] = {1 - fx, fx}, wy[2] = {1 - fy, fy}, sign[2] = {-1, 1};
  for (int j = 0; j < 2; ++j)
    for (int i = 0; i < 2; ++i) {
      const int c = 2 * j + i;
      p.row[c] = inx[i] && iny[j] ? (iy + j) * w + ix + i : -1;
      p.weight[c] = wy[j] * wx[i];
      p.dx[c] = wy[j] * sign[i];
      p.dy[c] = sign[j] * wx[i];
    }
  return true;
}

template <typename T, int64_t FixedD>
void forward_kernel(const Dims& z, const T* v, const T* loc, const T* attn, T* out) {
  const int64_t stride = z.H * z.D;  // between rows of one head's value
  const int64_t D = FixedD ? FixedD : z.D;  // a constant lets the compiler unroll the short loops below
  at::parallel_for(0, z.N * z.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> zeros(z.D, T(0));
    Point<T> pt;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / z.H, h = task % z.H;
      for (int64_t q = 0; q < z.Q; ++q) {
        T* __restrict__ acc = out + ((n * z.Q + q) * z.H + h) * z.D;
        const int64_t base = ((n * z.Q + q) * z.H + h) * z.L * z.P;
        for (int64_t l = 0; l < z.L; ++l) {
          const int64_t lh = z.shapes[2 * l], lw = z.shapes[2 * l + 1];
          const T* level = v + ((n * z.S + z.starts[l]) * z.H + h) * z.D;
          for (int64_t p = 0; p < z.P; ++p) {
            const int64_t k = base + l * z.P + p;
            if (!bilinear<T>(loc[2 * k] * lw - T(0.5), loc[2 * k + 1] * lh - T(0.5), lh, lw, pt)) continue;
            const T* __restrict__ r[4];
            T w[4];
            for (int c = 0; c < 4; ++c) {
              r[c] = pt.row[c] < 0 ? zeros.data() : level + pt.row[c] * stride;
              w[c] = pt.weight[c] * attn[k];
            }
#pragma omp simd
            for (int64_t d = 0; d < D; ++d)
              acc[d] += w[0] * r[0][d] + w[1] * r[1][d] + w[2] * r[2][d] + w[3] * r[3][d];
          }
        }
      }
    }
  });
}

template <typename T, int64_t FixedD>
void backward_kernel(const Dims& z, const T* v, const T* loc, const T* attn, const T* grad,
                     T* grad_v, T* grad_loc, T* grad_attn) {
  const int64_t stride = z.H * z.D;
  const int64_t D = FixedD ? FixedD : z.D;
  at::parallel_for(0, z.N * z.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> zeros(z.D, T(0)), scratch(z.D);  // read and written in place of corners outside the map
    Point<T> pt;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / z.H, h = task % z.H;
      for (int64_t q = 0; q < z.Q; ++q) {
        const T* __restrict__ g = grad + ((n * z.Q + q) * z.H + h) * z.D;
        const int64_t base = ((n * z.Q + q) * z.H + h) * z.L * z.P;
        for (int64_t l = 0; l < z.L; ++l) {
          const int64_t lh = z.shapes[2 * l], lw = z.shapes[2 * l + 1];
          const int64_t level = ((n * z.S + z.starts[l]) * z.H + h) * z.D;
          for (int64_t p = 0; p < z.P; ++p) {
            const int64_t k = base + l * z.P + p;
            const T a = attn[k];
            if (!bilinear<T>(loc[2 * k] * lw - T(0.5), loc[2 * k + 1] * lh - T(0.5), lh, lw, pt)) {
              grad_attn[k] = grad_loc[2 * k] = grad_loc[2 * k + 1] = 0;
              continue;
            }
            const T* __restrict__ r[4];
            T* __restrict__ gr[4];
            T w[4];
            for (int c = 0; c < 4; ++c) {
              r[c] = pt.row[c] < 0 ? zeros.data() : v + level + pt.row[c] * stride;
              gr[c] = pt.row[c] < 0 ? scratch.data() : grad_v + level + pt.row[c] * stride;
              w[c] = pt.weight[c] * a;
            }
            // the gradient's dot products with the sample and with its derivatives by x and y
            const T* __restrict__ cw = pt.weight;
            const T* __restrict__ cx = pt.dx;
            const T* __restrict__ cy = pt.dy;
            T sample = 0, dx = 0, dy = 0;
#pragma omp simd reduction(+ : sample, dx, dy)
            for (int64_t d = 0; d < D; ++d) {
              const T gd = g[d], v0 = r[0][d], v1 = r[1][d], v2 = r[2][d], v3 = r[3][d];
              sample += gd * (cw[0] * v0 + cw[1] * v1 + cw[2] * v2 + cw[3] * v3);
              dx += gd * (cx[0] * v0 + cx[1] * v1 + cx[2] * v2 + cx[3] * v3);
              dy += gd * (cy[0] * v0 + cy[1] * v1 + cy[2] * v2 + cy[3] * v3);
              gr[0][d] += w[0] * gd;
              gr[1][d] += w[1] * gd;
              gr[2][d] += w[2] * gd;
              gr[3][d] += w[3] * gd;
            }
            grad_attn[k] = sample;
            grad_loc[2 * k] = a * dx * static_cast<T>(lw);
            grad_loc[2 * k + 1] = a * dy * static_cast<T>(lh);
          }
        }
      }
    }
  });
}

// Calls f with the head width as a compile-time constant for the common widths (0: any other, read at run time).
template <typename F>
void with_width(int64_t d, F&& f) {
  switch (d) {
    case 4: return f(std::integral_constant<int64_t, 4>{});
    case 8: return f(std::integral_constant<int64_t, 8>{});
    case 16: return f(std::integral_constant<int64_t, 16>{});
    case 32: return f(std::integral_constant<int64_t, 32>{});
    case 64: return f(std::integral_constant<int64_t, 64>{});
    default: return f(std::integral_constant<int64_t, 0>{});
  }
}

Dims dims(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts, const at::Tensor& loc,
          const at::Tensor& attn) {
  TORCH_CHECK(value.dim() == 4 && loc.dim() == 6 && attn.dim() == 5 && loc.size(5) == 2, "msda: bad ranks");
  TORCH_CHECK(value.is_contiguous() && loc.is_contiguous() && attn.is_contiguous() && shapes.is_contiguous() &&
              starts.is_contiguous(), "msda: inputs not contiguous");
  TORCH_CHECK(shapes.scalar_type() == at::kLong && starts.scalar_type() == at::kLong, "msda: shapes not int64");
  TORCH_CHECK(loc.scalar_type() == value.scalar_type() && attn.scalar_type() == value.scalar_type(),
              "msda: mixed dtypes");
  TORCH_CHECK(shapes.size(0) == loc.size(3) && starts.size(0) == loc.size(3), "msda: levels differ");
  TORCH_CHECK(value.size(2) == loc.size(2), "msda: heads differ");
  return {value.size(0), value.size(1), value.size(2), value.size(3), loc.size(1), loc.size(3), loc.size(4),
          shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>()};
}

}  // namespace

// value [N, S, H, D], shapes [L, 2] (h, w), starts [L], loc [N, Q, H, L, P, 2] (x, y in [0, 1]),
// attn [N, Q, H, L, P] -> [N, Q, H, D]
at::Tensor msda_forward(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts,
                        const at::Tensor& loc, const at::Tensor& attn) {
  const Dims z = dims(value, shapes, starts, loc, attn);
  auto out = at::zeros({z.N, z.Q, z.H, z.D}, value.options());
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_forward", [&] {
    const auto args = std::make_tuple(z, value.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(),
                                      attn.data_ptr<scalar_t>(), out.data_ptr<scalar_t>());
    with_width(z.D, [&](auto width) { std::apply(forward_kernel<scalar_t, decltype(width)::value>, args); });
  });
  return out;
}

// grad [N, Q, H, D] -> (grad value, grad loc, grad attn), shaped as those inputs
std::vector<at::Tensor> msda_backward(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts,
                                      const at::Tensor& loc, const at::Tensor& attn, const at::Tensor& grad) {
  const Dims z = dims(value, shapes, starts, loc, attn);
  TORCH_CHECK(grad.is_contiguous() && grad.scalar_type() == value.scalar_type() && grad.numel() == z.N * z.Q * z.H * z.D,
              "msda: bad gradient");
  auto gv = at::zeros_like(value), gl = at::empty_like(loc), ga = at::empty_like(attn);
  AT_DISPATCH_FLOATING_TYPES(value.scalar_type(), "msda_backward", [&] {
    const auto args = std::make_tuple(z, value.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(),
                                      attn.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), gv.data_ptr<scalar_t>(),
                                      gl.data_ptr<scalar_t>(), ga.data_ptr<scalar_t>());
    with_width(z.D, [&](auto width) { std::apply(backward_kernel<scalar_t, decltype(width)::value>, args); });
  });
  return {gv, gl, ga};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &msda_forward, "fused multi-scale deformable attention sampling");
  m.def("backward", &msda_backward, "its gradients by value, sampling locations and attention weights");
}
