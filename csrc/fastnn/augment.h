// Per-image affine warps for data augmentation (fastnn.data.ImageDataGenerator):
// rotation, shifts, zoom, shear and flips folded into one matrix per image,
// sampled with bilinear interpolation. Images are independent, so results
// are the same for any thread count.
#pragma once
#include <cstdint>

namespace fastnn {

// How a sample outside the image is read (Keras's fill_mode), for a row of
// four pixels abcd:
//   nearest   aaaa|abcd|dddd      reflect  dcba|abcd|dcba (about the edge)
//   constant  kkkk|abcd|kkkk      wrap     abcd|abcd|abcd
// Interpolation then blends neighbours as in the image's interior, so a
// sample half a pixel past the edge is half edge, half k.
enum class FillMode { nearest, constant, reflect, wrap };

struct AffineWarp {
  int64_t n;            // images in x
  int64_t h, w, c;      // every image's height, width and channels (in and out)
  int64_t batch;        // images written
  FillMode fill;
  float cval;           // FillMode::constant's value, in x's units
};

// out[b] = scale * (x[index[b]] warped by matrix[b]) + shift
//   x: (N, H, W, C) uint8 or float32; index: (B,) in [0, N);
//   matrix: (B, 6) = [a00 a01 a02 a10 a11 a12]: output pixel (r, c) reads x at
//     row a00 r + a01 c + a02, column a10 r + a11 c + a12 (pixel centres at
//     integers); entries finite, every coordinate within kMaxWarpCoordinate
//     (max_warp_coordinate);
//   scale, shift: (C,) per channel; out: (B, H, W, C) float32, overwritten.
template <class T>
void affine_warp(const AffineWarp& p, const T* x, const int64_t* index, const double* matrix,
                 const float* scale, const float* shift, float* out);

// The same, one sample at a time in double precision: the plain version the
// fast one is tested against.
template <class T>
void affine_warp_reference(const AffineWarp& p, const T* x, const int64_t* index,
                           const double* matrix, const float* scale, const float* shift,
                           float* out);

// Keeps the sampled coordinates, their floors and neighbours exact and far
// inside int64.
constexpr double kMaxWarpCoordinate = 1e15;

// The largest |row| and |column| matrix a (6) samples over an h x w image
// (infinite or NaN when an entry is).
double max_warp_coordinate(const double* a, int64_t h, int64_t w);

}  // namespace fastnn
