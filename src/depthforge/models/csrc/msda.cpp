// Multi-scale deformable attention's sampling on the CPU, fused: each query's bilinear samples are weighted and
// summed as they are read, so the [N·heads, D, Q, points] sample tensors of the PyTorch path are never written.
// Follows Deformable DETR's CUDA kernel (fundamentalvision/Deformable-DETR, ms_deform_im2col_cuda.cuh): the same
// inputs, grid_sample's bilinear rule with zero padding and align_corners=False (pixel x = loc_x * W - 0.5), a
// point outside (-1, W) × (-1, H) skipped, the same gradients. One task per (batch, head): each task writes only
// its own slices of the outputs and gradients, so no atomics are needed.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

namespace {

struct Corner {
  int64_t offset;          // row of the corner in its level (y * w + x)
  double weight, dx, dy;   // bilinear weight and its derivatives by x and y (pixels)
};

// The up to four in-range corners of sampling point (x, y), in pixels, on an h×w level.
inline int corners(double x, double y, int64_t h, int64_t w, Corner* out) {
  if (!(x > -1 && y > -1 && x < w && y < h)) return 0;
  const double x0 = std::floor(x), y0 = std::floor(y), fx = x - x0, fy = y - y0;
  const int64_t ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
  const int64_t xs[2] = {ix, ix + 1}, ys[2] = {iy, iy + 1};
  const double wx[2] = {1 - fx, fx}, wy[2] = {1 - fy, fy}, sign[2] = {-1, 1};
  int n = 0;
  for (int j = 0; j < 2; ++j) {
    if (ys[j] < 0 || ys[j] >= h) continue;
    for (int i = 0; i < 2; ++i) {
      if (xs[i] < 0 || xs[i] >= w) continue;
      out[n++] = {ys[j] * w + xs[i], wy[j] * wx[i], wy[j] * sign[i], sign[j] * wx[i]};
    }
  }
  return n;
}

struct Dims {
  int64_t N, S, H, D, Q, L, P;
  const int64_t* shapes;  // [L, 2]: h, w
  const int64_t* starts;  // [L]
};

template <typename T>
void forward_kernel(const Dims& z, const T* v, const T* loc, const T* attn, T* out) {
  at::parallel_for(0, z.N * z.H, 1, [&](int64_t begin, int64_t end) {
    Corner c[4];
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
            const int m = corners(static_cast<double>(loc[2 * k]) * lw - 0.5,
                                  static_cast<double>(loc[2 * k + 1]) * lh - 0.5, lh, lw, c);
            for (int j = 0; j < m; ++j) {
              const T w = static_cast<T>(c[j].weight) * attn[k];
              const T* __restrict__ row = level + c[j].offset * z.H * z.D;
#pragma omp simd
              for (int64_t d = 0; d < z.D; ++d) acc[d] += w * row[d];
            }
          }
        }
      }
    }
  });
}

template <typename T>
void backward_kernel(const Dims& z, const T* v, const T* loc, const T* attn, const T* grad,
                     T* grad_v, T* grad_loc, T* grad_attn) {
  at::parallel_for(0, z.N * z.H, 1, [&](int64_t begin, int64_t end) {
    Corner c[4];
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
            const int m = corners(static_cast<double>(loc[2 * k]) * lw - 0.5,
                                  static_cast<double>(loc[2 * k + 1]) * lh - 0.5, lh, lw, c);
            const T a = attn[k];
            T sample = 0, dx = 0, dy = 0;
            for (int j = 0; j < m; ++j) {
              const T* __restrict__ row = v + level + c[j].offset * z.H * z.D;
              T* __restrict__ grow = grad_v + level + c[j].offset * z.H * z.D;
              const T w = static_cast<T>(c[j].weight) * a;
              T dot = 0;
#pragma omp simd reduction(+ : dot)
              for (int64_t d = 0; d < z.D; ++d) {
                dot += g[d] * row[d];
                grow[d] += w * g[d];
              }
              sample += static_cast<T>(c[j].weight) * dot;
              dx += static_cast<T>(c[j].dx) * dot;
              dy += static_cast<T>(c[j].dy) * dot;
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

Dims dims(const at::Tensor& value, const at::Tensor& shapes, const at::Tensor& starts, const at::Tensor& loc,
          const at::Tensor& attn) {
  TORCH_CHECK(value.dim() == 4 && loc.dim() == 6 && attn.dim() == 5 && loc.size(5) == 2, "msda: bad ranks");
  TORCH_CHECK(value.is_contiguous() && loc.is_contiguous() && attn.is_contiguous() && shapes.is_contiguous() &&
              starts.is_contiguous(), "msda: inputs not contiguous");
  TORCH_CHECK(shapes.scalar_type() == at::kLong && starts.scalar_type() == at::kLong, "msda: shapes not int64");
  TORCH_CHECK(loc.scalar_type() == value.scalar_type() && attn.scalar_type() == value.scalar_type(),
              "msda: mixed dtypes");
  TORCH_CHECK(shapes.size(0) == loc.size(3) && starts.size(0) == loc.size(3), "msda: levels differ");
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
    forward_kernel<scalar_t>(z, value.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(),
                             out.data_ptr<scalar_t>());
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
    backward_kernel<scalar_t>(z, value.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(), attn.data_ptr<scalar_t>(),
                              grad.data_ptr<scalar_t>(), gv.data_ptr<scalar_t>(), gl.data_ptr<scalar_t>(),
                              ga.data_ptr<scalar_t>());
  });
  return {gv, gl, ga};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &msda_forward, "fused multi-scale deformable attention sampling");
  m.def("backward", &msda_backward, "its gradients by value, sampling locations and attention weights");
}
