// Data-parallel training's process group: a TCPStore that rank 0 hosts, c10d's ProcessGroupGloo and, for CUDA
// ranks of an addon built against a CUDA libtorch with NCCL's headers, ProcessGroupNCCL, joined from the launcher's
// environment (torchrun or `prefix-rl launch`). Every collective runs on the compute thread, so it takes its place
// in the queue of the training's torch work exactly where JS submitted it; it waits at most the group's timeout.
// Before each collective a rank writes its count of collectives to the store, so a failure can name the ranks that
// never arrived instead of only the broken connection.
//
// Tensors of several shapes travel in flat buckets (one collective per bucket of one dtype and device, every bucket
// in flight at once). With NCCL, CUDA tensors are reduced and broadcast where they are, on NCCL's stream (ordered
// after the work queued before them on the current stream, and the current stream after them); otherwise they are
// staged through host memory, which is what Gloo reduces. Gloo keeps the host-side collectives either way: the
// all-gathers (shapes, objects) and the monitored barrier.
#include "addon.h"
#include "async.h"
#include "common.h"
#include "tensor.h"

#ifdef PREFIX_RL_GLOO
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef PREFIX_RL_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace prefix_rl {

#ifdef PREFIX_RL_GLOO

namespace {

struct JoinOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::chrono::milliseconds timeout{0};
  bool nccl = false;  // CUDA tensors' collectives through NCCL
};

std::vector<uint8_t> bytes(const std::string& text) { return {text.begin(), text.end()}; }
std::string text(const std::vector<uint8_t>& value) { return {value.begin(), value.end()}; }
std::string arrival_key(int rank) { return "prefix-rl/arrived/" + std::to_string(rank); }

c10d::ReduceOp parse_op(const std::string& name) {
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  if (name == "product") return c10d::ReduceOp::PRODUCT;
  invalid_argument("reduce op must be sum, max, min or product, got '" + name + "'");
}

// The tensors, taken in `order`, grouped into buckets of one dtype and device of at most `bucket_bytes` each (a
// larger tensor is a bucket of its own): each bucket's tensor indices, buckets in the order they were opened.
std::vector<std::vector<size_t>> bucket_indices(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& order, int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  std::map<std::pair<at::ScalarType, std::string>, size_t> open;  // (dtype, device) → its bucket being filled
  std::vector<int64_t> filled;
  for (size_t i : order) {
    const at::Tensor& tensor = tensors[i];
    const int64_t size = tensor.numel() * tensor.element_size();
    const auto key = std::make_pair(tensor.scalar_type(), tensor.device().str());
    auto found = open.find(key);
    if (found == open.end() || filled[found->second] + size > bucket_bytes) {
      buckets.emplace_back();
      filled.push_back(0);
      found = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[found->second].push_back(i);
    filled[found->second] += size;
  }
  return buckets;
}

// Tensors flattened into buckets (bucket_indices, in their order), each on the device `reduced_on` names for its
// tensors' (the host for Gloo, their own for NCCL); `scatter` writes a bucket's result back into its tensors.
struct Bucket {
  std::vector<at::Tensor> tensors;
  at::Tensor flat;
};

template <typename ReducedOn>
std::vector<Bucket> make_buckets(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, ReducedOn&& reduced_on) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::vector<Bucket> out;
  for (const std::vector<size_t>& members : bucket_indices(tensors, order, bucket_bytes)) {
    Bucket bucket;
    std::vector<at::Tensor> flat;
    const at::Device device = reduced_on(tensors[members.front()].device());
    for (size_t i : members) {
      bucket.tensors.push_back(tensors[i]);
      flat.push_back(tensors[i].detach().reshape({-1}).to(device));
    }
    bucket.flat = flat.size() == 1 ? flat[0].clone() : at::cat(flat);
    out.push_back(std::move(bucket));
  }
  return out;
}

// An exception's message, a c10::Error's without its C++ backtrace.
std::string message_of(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  return c10_error ? c10_error->what_without_backtrace() : e.what();
}

void scatter(const Bucket& bucket) {
  int64_t offset = 0;
  for (const at::Tensor& tensor : bucket.tensors) {
    const int64_t n = tensor.numel();
    tensor.detach().copy_(bucket.flat.slice(0, offset, offset + n).view(tensor.sizes()));
    offset += n;
  }
}

// The transport devices this rank's Gloo binds: GLOO_SOCKET_IFNAME's interfaces (PyTorch's variable, comma-separated),
// else MASTER_ADDR where it is an address of this machine (every rank on rank 0's node), else this machine's own
// hostname (a rank on another node: MASTER_ADDR is rank 0's address there, which it cannot bind).
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const std::string& master_addr) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  if (const char* names = std::getenv("GLOO_SOCKET_IFNAME"); names != nullptr && *names != '\0') {
    std::stringstream list(names);
    for (std::string name; std::getline(list, name, ',');) {
      if (!name.empty()) devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
    if (!devices.empty()) return devices;
  }
  try {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(master_addr));
  } catch (const std::exception&) {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}

}  // namespace

class ProcessGroup {
 public:
  explicit ProcessGroup(const JoinOptions& options)
      : rank_(options.rank),
        world_size_(options.world_size),
        timeout_(options.timeout),
        where_(options.master_addr + ":" + std::to_string(options.master_port)) {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.master_port);
    store_options.isServer = rank_ == 0;
    store_options.numWorkers = world_size_;
    store_options.waitWorkers = true;
    store_options.timeout = timeout_;
#ifndef PREFIX_RL_NCCL
    if (options.nccl) {
      throw Error(ErrorCode::Distributed,
                  "this addon was built without NCCL (it needs a CUDA libtorch and NCCL's nccl.h at build time: pip's nvidia-nccl wheel, or "
                  "libnccl-dev); join with backend gloo, which stages CUDA tensors through host memory");
    }
#endif
    if (options.nccl && at::getNumGPUs() == 0) {
      throw Error(
          ErrorCode::Distributed,
          "rank " + std::to_string(rank_) + ": backend nccl needs a CUDA device and none is visible (check CUDA_VISIBLE_DEVICES); use backend gloo");
    }
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
      // Each backend rendezvouses under a prefix of its own in the one store.
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout_);
      gloo_options->devices = gloo_devices(options.master_addr);
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_), rank_, world_size_, gloo_options);
#ifdef PREFIX_RL_NCCL
      if (options.nccl) {
        // A blocking wait throws at the timeout (naming the ranks behind, as Gloo's does) instead of leaving a
        // stuck kernel to the watchdog; the user's own setting wins.
        setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
        auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
        nccl_options->timeout = timeout_;
        nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_), rank_, world_size_, nccl_options);
        // Bound to this rank's GPU (the compute thread's current device, set from LOCAL_RANK) and connected now, so
        // that two ranks on one GPU or a missing peer fail here, in the join, rather than in the first backward.
        const at::Device device(at::kCUDA, c10::cuda::current_device());
        nccl_->setBoundDeviceId(device);
        nccl_->eagerConnectSingleDevice(device);
      }
#endif
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Distributed, "rank " + std::to_string(rank_) + " could not join the process group at " + where_ + " (world size " +
                                              std::to_string(world_size_) + ", timeout " + std::to_string(timeout_.count() / 1000.0) +
                                              " s): are all ranks started, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE? [" + message_of(e) +
                                              "]");
    }
  }

  // Leaving. Every collective has been waited for (or settled) by then, so aborting NCCL's communicator preempts
  // nothing; unlike shutdown(), whose finalize waits for the peers, it cannot hang on a dead one, and it spares the
  // destructor's warning that destroy_process_group was not called.
  ~ProcessGroup() {
#ifdef PREFIX_RL_NCCL
    if (nccl_) {
      try {
        nccl_->abort();
      } catch (const std::exception&) {
        // Leaving anyway: the communicator's resources go with the process.
      }
    }
#endif
  }

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Where tensors on `device` are reduced: there for CUDA tensors over NCCL, else staged through host memory (Gloo).
  at::Device reduced_on(const at::Device& device) const { return nccl_ && device.is_cuda() ? device : at::Device(at::kCPU); }

  void all_reduce(const std::vector<at::Tensor>& tensors, c10d::ReduceOp op, int64_t bucket_bytes) {
    collective("allReduce", [&]() {
      run_buckets(tensors, bucket_bytes, [&](std::vector<at::Tensor>& flat) {
        c10d::AllreduceOptions options;
        options.reduceOp = op;
        options.timeout = timeout_;
        return backend_for(flat[0]).allreduce(flat, options);
      });
    });
  }

  void broadcast(const std::vector<at::Tensor>& tensors, int root, int64_t bucket_bytes) {
    collective("broadcast", [&]() {
      run_buckets(tensors, bucket_bytes, [&](std::vector<at::Tensor>& flat) {
        c10d::BroadcastOptions options;
        options.rootRank = root;
        options.timeout = timeout_;
        return backend_for(flat[0]).broadcast(flat, options);
      });
    });
  }

  // Every rank's tensor, in rank order; shapes may differ between ranks (dtype and rank count of dims may not).
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor) {
    constexpr int64_t kMaxDims = 8;
    if (tensor.dim() > kMaxDims) invalid_argument("allGather takes tensors of at most 8 dimensions");
    std::vector<at::Tensor> out;
    collective("allGather", [&]() {
      // First the shapes: [dtype, dims, sizes..., -1...] per rank.
      at::Tensor header = at::full({kMaxDims + 2}, -1, at::kLong);
      header[0] = static_cast<int64_t>(tensor.scalar_type());
      header[1] = tensor.dim();
      for (int64_t d = 0; d < tensor.dim(); ++d) header[d + 2] = tensor.size(d);
      const std::vector<at::Tensor> headers = gather_equal(header);
      int64_t longest = 0;
      std::vector<std::vector<int64_t>> shapes;
      for (int r = 0; r < world_size_; ++r) {
        const int64_t* h = headers[r].data_ptr<int64_t>();
        if (h[0] != header[0].item<int64_t>() || h[1] != tensor.dim()) {
          throw Error(ErrorCode::Distributed, "allGather: rank " + std::to_string(r) +
                                                  " gave a tensor of another dtype or number of dimensions than rank " + std::to_string(rank_) +
                                                  "'s " + dtype_name(tensor.scalar_type()) + " of " + std::to_string(tensor.dim()) + " dimensions");
        }
        shapes.emplace_back(h + 2, h + 2 + h[1]);
        int64_t numel = 1;
        for (int64_t size : shapes.back()) numel *= size;
        longest = std::max(longest, numel);
      }
      // Then the data, padded to the longest (nothing to send when every tensor is empty).
      if (longest == 0) {
        for (int r = 0; r < world_size_; ++r) out.push_back(at::empty(shapes[r], tensor.options()));
        return;
      }
      at::Tensor padded = at::zeros({longest}, tensor.options().device(at::kCPU));
      padded.slice(0, 0, tensor.numel()).copy_(tensor.detach().reshape({-1}));
      const std::vector<at::Tensor> parts = gather_equal(padded);
      for (int r = 0; r < world_size_; ++r) {
        int64_t numel = 1;
        for (int64_t size : shapes[r]) numel *= size;
        out.push_back(parts[r].slice(0, 0, numel).view(shapes[r]).to(tensor.device()));
      }
    });
    return out;
  }

  // A sum of `flat` in place, launched now and finished by wait(): the gradient reducer's buckets, which start
  // during the backward.
  struct Launched {
    c10::intrusive_ptr<c10d::Work> work;
    int64_t seq = 0;
  };
  Launched launch_sum(at::Tensor& flat) {
    Launched launched;
    launched.seq = collective(kGradients, [&]() {
      std::vector<at::Tensor> tensors{flat};
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      options.timeout = timeout_;
      launched.work = backend_for(flat).allreduce(tensors, options);
    });
    return launched;
  }
  void wait(const Launched& launched) {
    try {
      launched.work->wait();
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Distributed, describe_failure(kGradients, launched.seq, message_of(e)));
    }
  }

  // Waits for started work whose result is abandoned (a failed call or step), ignoring its errors, so that no
  // collective still writes buffers that are about to be freed and reused.
  static void settle(const c10::intrusive_ptr<c10d::Work>& work) {
    if (!work) return;
    try {
      work->wait();
    } catch (const std::exception&) {
      // The failure that abandoned it is the one reported.
    }
  }

  // Returns when every rank has arrived; rank 0's error names the ranks that did not within the timeout.
  void barrier() {
    collective("barrier", [&]() {
      c10d::BarrierOptions options;
      options.timeout = timeout_;
      gloo_->monitoredBarrier(options, /*waitAllRanks=*/true);
    });
  }

 private:
  // The backend that reduces `flat` where it is: NCCL for a CUDA tensor when the group has it, else Gloo.
  c10d::Backend& backend_for(const at::Tensor& flat) { return nccl_ && flat.is_cuda() ? *nccl_ : static_cast<c10d::Backend&>(*gloo_); }

  std::vector<at::Tensor> gather_equal(const at::Tensor& input) {
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size_; ++r) outputs[0].push_back(at::empty_like(input));
    std::vector<at::Tensor> inputs{input};
    c10d::AllgatherOptions options;
    options.timeout = timeout_;
    gloo_->allgather(outputs, inputs, options)->wait();
    return outputs[0];
  }

  template <typename Launch>
  void run_buckets(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, Launch&& launch) {
    at::NoGradGuard no_grad;
    std::vector<Bucket> buckets = make_buckets(tensors, bucket_bytes, [this](const at::Device& device) { return reduced_on(device); });
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    try {
      for (Bucket& bucket : buckets) {
        std::vector<at::Tensor> flat{bucket.flat};
        works.push_back(launch(flat));
      }
      for (size_t i = 0; i < buckets.size(); ++i) {
        works[i]->wait();
        scatter(buckets[i]);
      }
    } catch (...) {
      for (const auto& work : works) settle(work);  // before the buckets are freed
      throw;
    }
  }

  static constexpr const char* kGradients = "allReduce of gradients";

  // Runs one collective: announces the arrival, runs `body` (which waits for its work, or launches it), and turns a
  // failure into an error that names the ranks that never reached this collective. Returns its number.
  template <typename Body>
  int64_t collective(const char* name, Body&& body) {
    const int64_t seq = ++collectives_;
    try {
      store_->set(arrival_key(rank_), bytes(std::to_string(seq)));
      body();
      return seq;
    } catch (const Error&) {
      throw;  // already ours (a mismatch between ranks, bad input)
    } catch (const std::exception& e) {
      throw Error(ErrorCode::Distributed, describe_failure(name, seq, message_of(e)));
    }
  }

  std::string describe_failure(const char* name, int64_t seq, const std::string& what) {
    std::string message = "rank " + std::to_string(rank_) + ": collective #" + std::to_string(seq) + " (" + name + ") failed";
    try {
      std::vector<std::string> behind;
      for (int r = 0; r < world_size_; ++r) {
        if (r == rank_) continue;
        const std::string key = arrival_key(r);
        const int64_t last = store_->check({key}) ? std::stoll(text(store_->get(key))) : 0;
        if (last < seq) behind.push_back("rank " + std::to_string(r) + " (its last was #" + std::to_string(last) + ")");
      }
      if (!behind.empty()) {
        std::string names;
        for (const std::string& b : behind) names += (names.empty() ? "" : ", ") + b;
        message += ": " + names + " did not arrive — it stopped, crashed or fell behind";
      }
    } catch (const std::exception&) {
      message += ": the store at " + where_ + " that rank 0 hosts is unreachable, so rank 0 has stopped";
    }
    return message + " [" + what + "]";
  }

  const int rank_;
  const int world_size_;
  const std::chrono::milliseconds timeout_;
  const std::string where_;
  int64_t collectives_ = 0;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_;
  c10::intrusive_ptr<c10d::Backend> nccl_;  // joined with NCCL: CUDA tensors' all-reduce and broadcast
};

#else

// Built without Gloo's headers: joining fails with the fix; nothing else is reachable without a group.
class ProcessGroup {
 public:
  int rank() const { return 0; }
  int world_size() const { return 1; }
};

#endif

// The addon instance's process group, touched only on the compute thread.
struct DistributedState {
  std::unique_ptr<ProcessGroup> group;
};

namespace {

ProcessGroup& joined(DistributedState& state) {
  if (!state.group) throw Error(ErrorCode::Distributed, "no process group: call initProcessGroup first");
  return *state.group;
}

}  // namespace

#ifdef PREFIX_RL_GLOO

// Sums gradients over the ranks while the backward still runs, in buckets as DDP's Reducer does: parameters are
// bucketed in reverse order (the order the backward finishes them), and once the armed backward has accumulated
// every gradient of a bucket (a post-accumulate hook per parameter), the bucket's all-reduce starts (on Gloo's
// threads, or NCCL's stream for CUDA parameters). Buckets start strictly in order, so every rank issues the same collectives in the same order
// whenever its gradients are ready; finish() starts the rest (a rank without micro-batches starts them all), waits, and writes the sums back. Each
// bucket carries one flag per parameter, 1 where its rank had a gradient: a parameter no rank had a gradient for keeps none, as the optimizer of one
// process then skips it.
class GradientReducer : public std::enable_shared_from_this<GradientReducer> {
 public:
  GradientReducer(std::shared_ptr<DistributedState> state, std::vector<at::Tensor> parameters, int64_t bucket_bytes)
      : state_(std::move(state)), parameters_(std::move(parameters)), bucket_of_(parameters_.size()) {
    // One device: the backward runs each device's hooks on a thread of its own, and the hooks share the buckets.
    for (const at::Tensor& p : parameters_) {
      if (p.device() != parameters_.front().device()) {
        invalid_argument("the gradient reducer's parameters must be on one device, got " + parameters_.front().device().str() + " and " +
                         p.device().str());
      }
    }
    std::vector<size_t> reverse(parameters_.size());
    for (size_t i = 0; i < reverse.size(); ++i) reverse[i] = reverse.size() - 1 - i;
    for (std::vector<size_t>& members : bucket_indices(parameters_, reverse, bucket_bytes)) {
      for (size_t i : members) bucket_of_[i] = buckets_.size();
      const at::ScalarType dtype = parameters_[members.front()].scalar_type();
      buckets_.push_back(Bucket{std::move(members), dtype});
    }
  }

  // Counts the next backward's gradients (the last micro-batch of a step); installs the hooks the first time.
  void arm() {
    if (!hooked_) {
      std::weak_ptr<GradientReducer> self = weak_from_this();
      for (size_t i = 0; i < parameters_.size(); ++i) {
        if (!parameters_[i].requires_grad()) invalid_argument("the gradient reducer's parameters must require grad");
        torch::autograd::impl::set_post_acc_grad_hooks(parameters_[i], std::make_unique<ReadyHook>(self, i));
      }
      hooked_ = true;
    }
    settle();  // a step that failed after its backward started buckets (finish never ran, or threw) is forgotten
    armed_ = true;
  }

  // Starts the buckets not started yet, waits for all, writes the sums into the gradients; returns how many of the
  // buckets had started during the backward.
  double finish() {
    ProcessGroup& group = joined(*state_);
    armed_ = false;
    const size_t early = next_;
    try {
      write_sums(group);
    } catch (...) {
      settle();
      throw;
    }
    return static_cast<double>(early);
  }

  size_t buckets() const { return buckets_.size(); }

  void remove_hooks() {
    if (!hooked_) return;
    for (const at::Tensor& p : parameters_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
    hooked_ = false;
  }

 private:
  // finish()'s work: the rest of the buckets started, all waited for, their sums written into the gradients.
  void write_sums(ProcessGroup& group) {
    while (next_ < buckets_.size()) launch(next_++);
    at::NoGradGuard no_grad;
    for (Bucket& bucket : buckets_) {
      group.wait(bucket.launched);
      const int64_t flags = bucket.flat.numel() - static_cast<int64_t>(bucket.members.size());
      const at::Tensor had = bucket.flat.slice(0, flags).to(at::kFloat).cpu();
      int64_t offset = 0;
      for (size_t k = 0; k < bucket.members.size(); ++k) {
        const at::Tensor& p = parameters_[bucket.members[k]];
        const at::Tensor sum = bucket.flat.slice(0, offset, offset + p.numel()).view(p.sizes());
        offset += p.numel();
        if (had[k].item<float>() == 0)
          p.mutable_grad() = at::Tensor();
        else if (p.grad().defined())
          p.mutable_grad().copy_(sum);
        else
          p.mutable_grad() = sum.to(p.device()).clone();
      }
      forget(bucket);
    }
    next_ = 0;  // the next step starts from the first bucket again
  }

  // Forgets the step under way: waits for its started buckets (their errors were or will be reported elsewhere)
  // before their buffers go, and starts the next from the first bucket.
  void settle() {
    for (Bucket& bucket : buckets_) {
      ProcessGroup::settle(bucket.launched.work);
      forget(bucket);
    }
    next_ = 0;
  }

  struct Bucket {
    std::vector<size_t> members;  // parameter indices, in the order the backward finishes them
    at::ScalarType dtype;
    size_t ready = 0;
    at::Tensor flat;  // the members' gradients, then one flag per member
    ProcessGroup::Launched launched;
  };

  // A bucket done with (summed, or abandoned once settled): its buffer freed, ready for the next step.
  static void forget(Bucket& bucket) {
    bucket.flat = at::Tensor();
    bucket.launched = {};
    bucket.ready = 0;
  }

  struct ReadyHook : torch::autograd::PostAccumulateGradHook {
    ReadyHook(std::weak_ptr<GradientReducer> reducer, size_t index) : reducer(std::move(reducer)), index(index) {}
    void operator()(const torch::autograd::Variable&) override {
      if (auto r = reducer.lock()) r->ready(index);
    }
    std::weak_ptr<GradientReducer> reducer;
    size_t index;
  };

  void ready(size_t index) {
    if (!armed_) return;
    Bucket& bucket = buckets_[bucket_of_[index]];
    if (++bucket.ready < bucket.members.size()) return;
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].members.size()) launch(next_++);
  }

  void launch(size_t index) {
    at::NoGradGuard no_grad;
    ProcessGroup& group = joined(*state_);
    Bucket& bucket = buckets_[index];
    const at::Device device = group.reduced_on(parameters_[bucket.members.front()].device());
    std::vector<at::Tensor> parts;
    std::vector<double> had;
    for (size_t i : bucket.members) {
      const at::Tensor& p = parameters_[i];
      const at::Tensor& grad = p.grad();
      parts.push_back(grad.defined() ? grad.detach().reshape({-1}).to(device) : at::zeros({p.numel()}, p.options().device(device)));
      had.push_back(grad.defined() ? 1.0 : 0.0);
    }
    parts.push_back(at::tensor(had, at::kDouble).to(device, bucket.dtype));
    bucket.flat = at::cat(parts);
    bucket.launched = group.launch_sum(bucket.flat);
  }

  std::shared_ptr<DistributedState> state_;
  std::vector<at::Tensor> parameters_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;
  bool armed_ = false;
  bool hooked_ = false;
};

namespace {

// new NativeGradientReducer(parameters, bucketBytes?): arm(cancel?), finish(cancel?), close(cancel?), each a
// compute-thread job in order with the backward passes around it.
class GradientReducerHandle : public Napi::ObjectWrap<GradientReducerHandle> {
 public:
  static Napi::Function define_class(Napi::Env env) {
    return DefineClass(env, "NativeGradientReducer",
                       {InstanceMethod<&GradientReducerHandle::arm>("arm"), InstanceMethod<&GradientReducerHandle::finish>("finish"),
                        InstanceMethod<&GradientReducerHandle::close>("close")});
  }

  explicit GradientReducerHandle(const Napi::CallbackInfo& info);

 private:
  Napi::Value arm(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return run_async(info.Env(), info[0], [reducer = reducer_]() { reducer->arm(); }); });
  }
  Napi::Value finish(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      return run_async(info.Env(), info[0], [reducer = reducer_]() -> Completion {
        const double early = reducer->finish();
        const double buckets = static_cast<double>(reducer->buckets());
        return [early, buckets](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("buckets", buckets);
          out.Set("startedDuringBackward", early);
          return out;
        };
      });
    });
  }
  Napi::Value close(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return run_async(info.Env(), info[0], [reducer = reducer_]() { reducer->remove_hooks(); }); });
  }

  std::shared_ptr<GradientReducer> reducer_;
};

}  // namespace

#endif

namespace {

std::shared_ptr<DistributedState> state(Napi::Env env) {
  AddonData& data = addon_data(env);
  if (!data.distributed) data.distributed = std::make_shared<DistributedState>();
  return data.distributed;
}

[[maybe_unused]] int64_t bucket_bytes_arg(const Napi::Value& value) {
  const int64_t bytes = value.IsUndefined() ? (int64_t{25} << 20) : arg_int(value, "bucketBytes");
  if (bytes < 1) invalid_argument("bucketBytes must be >= 1");
  return bytes;
}

// distInit({rank, worldSize, masterAddr, masterPort, timeoutMs, backend?: 'gloo' | 'nccl'}, cancel?) → Promise<void>.
Napi::Value dist_init(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
#ifdef PREFIX_RL_GLOO
    if (!info[0].IsObject()) invalid_argument("initProcessGroup options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    // Every range is checked on the int64 values, before narrowing: 2^32 + 1 ranks must not pass as 1.
    const int64_t rank = opt_int(o, "rank", -1), world_size = opt_int(o, "worldSize", 0), port = opt_int(o, "masterPort", 0);
    const int64_t timeout_ms = opt_int(o, "timeoutMs", 0);
    if (world_size < 1 || world_size > (int64_t{1} << 24)) invalid_argument("worldSize must be in [1, 2^24]");
    if (rank < 0 || rank >= world_size) invalid_argument("rank must be in [0, worldSize)");
    if (port < 1 || port > 65535) invalid_argument("masterPort must be in [1, 65535]");
    if (timeout_ms < 1) invalid_argument("timeoutMs must be >= 1");
    JoinOptions options;
    options.rank = static_cast<int>(rank);
    options.world_size = static_cast<int>(world_size);
    options.master_addr = opt_string(o, "masterAddr", "");
    options.master_port = static_cast<int>(port);
    options.timeout = std::chrono::milliseconds(timeout_ms);
    const std::string backend = opt_string(o, "backend", "gloo");
    if (backend != "gloo" && backend != "nccl") invalid_argument("backend must be gloo or nccl, got '" + backend + "'");
    options.nccl = backend == "nccl";
    if (options.master_addr.empty()) invalid_argument("masterAddr must be a host name or address");
    return run_async(info.Env(), info[1], [state = state(info.Env()), options]() {
      if (state->group) throw Error(ErrorCode::Distributed, "this process has joined a process group already");
      state->group = std::make_unique<ProcessGroup>(options);
    });
#else
    throw Error(ErrorCode::Distributed,
                "this addon was built without Gloo's headers, so it cannot join a process group: install them (Debian/Ubuntu: apt install "
                "libgloo-dev) and rebuild (npm run build:native)");
#endif
  });
}

// distDestroy(cancel?) → Promise<void>: leaves the group (no collective: a failed peer cannot block it).
Napi::Value dist_destroy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return run_async(info.Env(), info[0], [state = state(info.Env())]() { state->group.reset(); }); });
}

#ifdef PREFIX_RL_GLOO
// distAllReduce(tensors, op, bucketBytes?, cancel?) → Promise<void>: in place.
Napi::Value dist_all_reduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::vector<at::Tensor> tensors = arg_tensors(info[0], "tensors");
    const c10d::ReduceOp op = parse_op(arg_string(info[1], "op"));
    const int64_t bucket = bucket_bytes_arg(info[2]);
    return run_async(info.Env(), info[3], [state = state(info.Env()), tensors, op, bucket]() { joined(*state).all_reduce(tensors, op, bucket); });
  });
}

// distBroadcast(tensors, root, bucketBytes?, cancel?) → Promise<void>: every rank's tensors take root's values.
Napi::Value dist_broadcast(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::vector<at::Tensor> tensors = arg_tensors(info[0], "tensors");
    const int64_t root = arg_int(info[1], "root");
    const int64_t bucket = bucket_bytes_arg(info[2]);
    return run_async(info.Env(), info[3], [state = state(info.Env()), tensors, root, bucket]() {
      ProcessGroup& group = joined(*state);
      if (root < 0 || root >= group.world_size()) invalid_argument("root must be a rank in [0, " + std::to_string(group.world_size()) + ")");
      group.broadcast(tensors, static_cast<int>(root), bucket);
    });
  });
}

// distAllGather(tensor, cancel?) → Promise<NativeTensor[]>: every rank's tensor, in rank order.
Napi::Value dist_all_gather(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor tensor = TensorHandle::unwrap(info[0], "tensor");
    return run_async(info.Env(), info[1], [state = state(info.Env()), tensor]() { return joined(*state).all_gather(tensor); });
  });
}

}  // namespace

GradientReducerHandle::GradientReducerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradientReducerHandle>(info) {
  guarded(info, [&]() -> Napi::Value {
    reducer_ = std::make_shared<GradientReducer>(state(info.Env()), arg_tensors(info[0], "parameters"), bucket_bytes_arg(info[1]));
    return info.Env().Undefined();
  });
}

namespace {

// distBarrier(cancel?) → Promise<void>.
Napi::Value dist_barrier(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return run_async(info.Env(), info[0], [state = state(info.Env())]() { joined(*state).barrier(); }); });
}
#endif

}  // namespace

void register_distributed(Napi::Env env, Napi::Object exports) {
  exports.Set("distInit", Napi::Function::New(env, dist_init, "distInit"));
  exports.Set("distDestroy", Napi::Function::New(env, dist_destroy, "distDestroy"));
#ifdef PREFIX_RL_GLOO
  exports.Set("distAllReduce", Napi::Function::New(env, dist_all_reduce, "distAllReduce"));
  exports.Set("distBroadcast", Napi::Function::New(env, dist_broadcast, "distBroadcast"));
  exports.Set("distAllGather", Napi::Function::New(env, dist_all_gather, "distAllGather"));
  exports.Set("distBarrier", Napi::Function::New(env, dist_barrier, "distBarrier"));
  exports.Set("NativeGradientReducer", GradientReducerHandle::define_class(env));
#endif
}

}  // namespace prefix_rl
