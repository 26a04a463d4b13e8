// parallel_rows: the row loop of the CPU kernels, on the intra-op threads, cancellable.
#pragma once

#include <ATen/Parallel.h>

#include <cstdint>

#include "common.h"

namespace prefix_rl {

// Runs row(n) for every n in [0, N) on the intra-op threads, checking for cancellation every 16 rows: parallel_for
// hands each thread one large chunk, so a check per chunk would come too late.
template <typename RowFn>
void parallel_rows(int64_t N, int64_t grain, const RowFn& row) {
  const CancelFlag* cancel = current_cancel_flag();  // thread-local: read on the calling thread
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      if ((n & 15) == 0) check_cancelled(cancel);
      row(n);
    }
  });
}

}  // namespace prefix_rl
