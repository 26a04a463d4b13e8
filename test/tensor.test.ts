import { addon } from '../lib/native/addon.js';
import { setBufferCacheLimit, setNumThreads } from '../lib/native/runtime.js';
import { Tensor, liveTensors, tidy, type DType } from '../lib/tensor/index.js';

const devices = ['cpu', ...(addon().runtimeInfo().cudaAvailable ? ['cuda:0'] : [])] as const;

describe('Tensor round trip', () => {
  const cases: [DType, ArrayBufferView][] = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0, 1e-30, 7])],
    ['float64', new Float64Array([1.5, -2, 3.25, 0, 1e-300, Math.PI])],
    ['int32', new Int32Array([1, -2, 3, 0, 2147483647, -2147483648])],
    ['int64', new BigInt64Array([1n, -2n, 3n, 0n, 9007199254740993n, -9223372036854775808n])],
    ['bool', new Uint8Array([1, 0, 1, 1, 0, 0])],
    ['uint8', new Uint8Array([0, 1, 127, 128, 200, 255])],
  ];
  for (const device of devices) {
    for (const [dtype, data] of cases) {
      test(`${dtype} on ${device}`, () => {
        tidy(() => {
          const t = Tensor.from(data as Float32Array, [2, 3], { dtype, device: device as 'cpu' });
          expect(t.shape).toEqual([2, 3]);
          expect(t.dtype).toBe(dtype);
          expect(t.device).toBe(device);
          expect(t.numel).toBe(6);
          expect(Array.from(t.toArray() as ArrayLike<unknown>)).toEqual(Array.from(data as unknown as ArrayLike<unknown>));
        });
      });
    }
    test(`bfloat16 storage on ${device}`, async () => {
      const values = new Float32Array([1, -2.5, 0.333333, 1024, 3.0e38, -1e-3]);
      const t = Tensor.from(values, [6], { dtype: 'bfloat16', device: device as 'cpu' });
      expect(t.dtype).toBe('bfloat16');
      const back = t.toArray() as Float32Array;
      for (let i = 0; i < values.length; i++) expect(Math.abs(back[i] - values[i])).toBeLessThanOrEqual(Math.abs(values[i]) * 2 ** -8);
      // Raw bits in, the same bits out (bf16 of 1.0 is 0x3f80).
      const bits = Tensor.from(new Uint16Array([0x3f80, 0xc000]), [2], { dtype: 'bfloat16' });
      expect(bits.toNumbers()).toEqual([1, -2]);
      expect(Array.from((await t.data()) as Float32Array)).toEqual(Array.from(back));
      t.dispose();
      bits.dispose();
    });
  }

  test('to() converts dtype and device and always copies', () => {
    tidy(() => {
      const a = Tensor.from(new Float32Array([1.25, 2.5]));
      const b = a.to('float64');
      expect(b.dtype).toBe('float64');
      const c = a.to('cpu');
      a.dispose();
      expect(c.toNumbers()).toEqual([1.25, 2.5]);
      expect(b.toNumbers()).toEqual([1.25, 2.5]);
    });
  });

  test('nested arrays infer shape; toNested inverts', () => {
    tidy(() => {
      const t = Tensor.from(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        undefined,
        { dtype: 'float64' },
      );
      expect(t.shape).toEqual([2, 3]);
      expect(t.toNested()).toEqual([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      expect(t.sum(1).toNested()).toEqual([6, 15]);
      expect(t.transpose(0, 1).shape).toEqual([3, 2]);
    });
  });
});

test('a JS number keeps integer tensors integral, as libtorch type promotion does', () =>
  tidy(() => {
    const big = Tensor.from(BigInt64Array.from([2n ** 62n + 1n, -3n]), [2]);
    const sum = big.add(1);
    expect(sum.dtype).toBe('int64');
    expect(Array.from(sum.toArray() as BigInt64Array)).toEqual([2n ** 62n + 2n, -2n]);
    expect(big.mul(2).dtype).toBe('int64');
    expect(Tensor.from([1, 2], [2], { dtype: 'int32' }).sub(1).dtype).toBe('int32');
    // A fractional number promotes to the default float dtype; a float tensor stays float.
    expect(big.add(0.5).dtype).toBe('float32');
    expect(Tensor.from([1.5], [1], { dtype: 'float64' }).add(2).dtype).toBe('float64');
    expect(Tensor.from([1, 3], [2], { dtype: 'int64' }).div(2).toNumbers()).toEqual([0.5, 1.5]); // true division
  }));

describe('bad input gives clear JS errors', () => {
  const expectError = (fn: () => unknown, code: string, message: RegExp) => {
    let caught: unknown;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    // Native errors come from Node's realm, not Jest's sandbox: check the brand, not instanceof.
    expect(Object.prototype.toString.call(caught)).toBe('[object Error]');
    expect((caught as { code?: string }).code).toBe(code);
    expect((caught as Error).message).toMatch(message);
  };

  test('Tensor.from refuses values its dtype cannot hold, and non-numbers', () => {
    expect(() => Tensor.from([2 ** 40], [1], { dtype: 'int32' })).toThrow(/value 0 \(1099511627776\) does not fit int32/);
    expect(() => Tensor.from([1, 2.5], [2], { dtype: 'int64' })).toThrow(/value 1 \(2.5\) is not an integer/);
    expect(() => Tensor.from([2 ** 62 + 1], [1], { dtype: 'int64' })).toThrow(/not a safe integer \(pass a BigInt\)/);
    expect(() => Tensor.from([256], [1], { dtype: 'uint8' })).toThrow(/does not fit uint8/);
    expect(() => Tensor.from([2], [1], { dtype: 'bool' })).toThrow(/does not fit bool/);
    expect(() => Tensor.from(['1' as unknown as number], [1])).toThrow(/value 0 is a string/);
    expect(() => Tensor.from([2n ** 63n], [1], { dtype: 'int64' })).toThrow(/does not fit int64/);
    // What fits comes through exactly: 2^62 + 1 as a BigInt, the int32 extremes, booleans.
    tidy(() => {
      expect(Tensor.from([2n ** 62n + 1n], [1]).toArray()[0]).toBe(2n ** 62n + 1n);
      expect([...Tensor.from([-(2 ** 31), 2 ** 31 - 1], [2], { dtype: 'int32' }).toArray()]).toEqual([-(2 ** 31), 2 ** 31 - 1]);
      expect([...Tensor.from([true, false], [2]).toArray()]).toEqual([1, 0]);
    });
  });

  test('typed-array length differs from the shape', () => {
    expectError(() => Tensor.from(new Float32Array(5), [2, 3]), 'ERR_INVALID_ARG', /5 elements but shape \[2, 3\] needs 6/);
  });
  test('unknown dtype and device', () => {
    expectError(() => Tensor.from(new Float32Array(1), [1], { dtype: 'float8' as DType }), 'ERR_INVALID_ARG', /unknown dtype 'float8'/);
    expectError(() => Tensor.from(new Float32Array(1), [1], { device: 'tpu' as 'cpu' }), 'ERR_INVALID_ARG', /unknown device 'tpu'/);
  });
  test('typed array of the wrong element type', () => {
    expectError(() => Tensor.from(new Int32Array(2), [2], { dtype: 'float32' }), 'ERR_INVALID_ARG', /float32 cannot be filled from a Int32Array/);
    expectError(() => Tensor.from(new Uint8Array([0, 2]), [2], { dtype: 'bool' }), 'ERR_INVALID_ARG', /0\/1 bytes/);
  });
  test('CUDA requested where it is absent', () => {
    if (addon().runtimeInfo().cudaAvailable) return;
    expectError(() => Tensor.zeros([2], { device: 'cuda:0' }), 'ERR_CUDA_UNAVAILABLE', /CUDA is not available/);
  });
  test('use after dispose', () => {
    const t = Tensor.zeros([2]);
    t.dispose();
    t.dispose(); // idempotent
    expect(t.isDisposed).toBe(true);
    expectError(() => t.shape, 'ERR_TENSOR_DISPOSED', /disposed/);
    expectError(() => t.add(1), 'ERR_TENSOR_DISPOSED', /disposed/);
  });
  test('out-of-range index', () => {
    tidy(() => {
      const t = Tensor.arange(0, 6).reshape([2, 3]);
      expectError(() => t.select(0, 2), 'ERR_TORCH', /index 2 out of range/);
      expect(() => t.gather(1, Tensor.from(new BigInt64Array([0n, 7n]), [2, 1]))).toThrow(/out of bounds|index 7/);
    });
  });
  test('shape mismatch in an op is a torch error, not an abort', () => {
    tidy(() => {
      expectError(() => Tensor.zeros([2, 3]).matmul(Tensor.zeros([2, 3])), 'ERR_TORCH', /cannot be multiplied|shapes/);
    });
  });
  test('an unknown op name', () => {
    expectError(() => Tensor.run('frobnicate', []), 'ERR_INVALID_ARG', /unknown op 'frobnicate'/);
  });
  test('item() on a tensor with many elements', () => {
    tidy(() => expectError(() => Tensor.zeros([3]).item(), 'ERR_INVALID_ARG', /one element/));
  });
});

describe('autograd', () => {
  test('gradient of f(x) = sum(log_softmax(x W)[:,0] * sigmoid(x)) matches central finite differences (float64)', () => {
    tidy(() => {
      const W = Tensor.randn([4, 5], 11, { dtype: 'float64' });
      const f = (x: Tensor) => x.matmul(W).logSoftmax(1).select(1, 0).unsqueeze(1).mul(x.sigmoid()).sum();
      const x0 = Tensor.randn([3, 4], 7, { dtype: 'float64' });
      const x = x0.clone();
      x.requiresGrad = true;
      f(x).backward();
      const grad = x.grad!.toArray() as Float64Array;
      const base = x0.toArray() as Float64Array;
      const h = 1e-6;
      for (let i = 0; i < base.length; i++) {
        const plus = Float64Array.from(base);
        plus[i] += h;
        const minus = Float64Array.from(base);
        minus[i] -= h;
        const fd = (f(Tensor.from(plus, [3, 4])).item() - f(Tensor.from(minus, [3, 4])).item()) / (2 * h);
        expect(Math.abs(grad[i] - fd)).toBeLessThan(1e-8 * Math.max(1, Math.abs(fd)));
      }
    });
  });
  test('zeroGrad resets accumulation; backward on a non-scalar needs a gradient', () => {
    tidy(() => {
      const x = Tensor.from(new Float64Array([1, 2]), [2], { requiresGrad: true });
      x.mul(x).sum().backward();
      x.mul(x).sum().backward();
      expect(x.grad!.toNumbers()).toEqual([4, 8]);
      x.zeroGrad();
      expect(x.grad!.toNumbers()).toEqual([0, 0]);
      expect(() => x.mul(2).backward()).toThrow(/scalar/);
      x.mul(2).backward(Tensor.from(new Float64Array([1, 3])));
      expect(x.grad!.toNumbers()).toEqual([2, 6]);
    });
  });
});

describe('linear', () => {
  // Few float32 rows take the skinny kernel; compare it with the same product in float64 (torch's path), across row
  // counts on both sides of its 8-row passes and 16-row limit, and K with and without a tail after the vector chunks.
  test.each([
    [1, 37, 5],
    [3, 16, 300],
    [8, 512, 130],
    [9, 70, 64],
    [16, 33, 1000],
    [17, 64, 40],
  ])('%i rows, K = %i, N = %i: equals the float64 product', (M, K, N) => {
    tidy(() => {
      const x = Tensor.randn([M, K], M * 1000 + K, { dtype: 'float32' });
      const w = Tensor.randn([N, K], N, { dtype: 'float32' });
      const b = Tensor.randn([N], 3, { dtype: 'float32' });
      const expected = x.to('float64').matmul(w.to('float64').transpose(0, 1)).add(b.to('float64'));
      const tolerance = 1e-5 * Math.sqrt(K) * 4;
      expect(x.linear(w, b).to('float64').sub(expected).abs().max().item()).toBeLessThan(tolerance);
      expect(
        x
          .linear(w)
          .to('float64')
          .sub(expected.sub(b.to('float64')))
          .abs()
          .max()
          .item(),
      ).toBeLessThan(tolerance);
      // Leading dims are kept: [1, M, K] → [1, M, N].
      expect(x.unsqueeze(0).linear(w).shape).toEqual([1, M, N]);
    });
  });

  test('with a gradient recorded it is torch linear, and differentiable', () => {
    tidy(() => {
      const x = Tensor.randn([2, 6], 1, { dtype: 'float32' });
      const w = Tensor.randn([3, 6], 2, { dtype: 'float32' });
      w.requiresGrad = true;
      x.linear(w).sum().backward();
      // d/dW Σ x Wᵀ = column sums of x, one row per output.
      const colSums = x.sum(0).toNumbers();
      for (const row of w.grad!.toNested() as number[][]) row.forEach((value, k) => expect(value).toBeCloseTo(colSums[k], 5));
    });
  });

  test('mismatched shapes are a JS error', () => {
    tidy(() => {
      expect(() => Tensor.randn([2, 5], 1).linear(Tensor.randn([3, 4], 2))).toThrow();
    });
  });
});

describe('memory', () => {
  test('tidy disposes what it does not return, also across await', async () => {
    const before = liveTensors();
    const kept = tidy(() => {
      const a = Tensor.ones([3]);
      const b = a.mul(2);
      return { b, list: [b.add(1)] };
    });
    expect(liveTensors()).toBe(before + 2);
    const fromAsync = await tidy(async () => {
      const a = Tensor.ones([64, 64]);
      const b = await a.matmulAsync(a);
      return b.sum();
    });
    expect(fromAsync.item()).toBe(64 * 64 * 64);
    expect(liveTensors()).toBe(before + 3);
    kept.b.dispose();
    kept.list[0].dispose();
    fromAsync.dispose();
    expect(liveTensors()).toBe(before);
  });

  test('100k create/dispose cycles leave zero live tensors and bounded RSS', async () => {
    const data = new Float32Array(256);
    // Node runs N-API finalizers of collected wrappers on the event loop, so yield between chunks as real loops do.
    const settle = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      global.gc?.();
      await new Promise((resolve) => setImmediate(resolve));
    };
    // The baseline after a collection: garbage tensors of earlier tests must not be finalised inside the count.
    await settle();
    const before = liveTensors();
    const cycle = async (n: number) => {
      for (let done = 0; done < n; done += 10_000) {
        for (let i = 0; i < 10_000; i++) {
          const t = Tensor.from(data, [16, 16]);
          const u = t.add(1);
          t.dispose();
          u.dispose();
        }
        await settle();
      }
    };
    await cycle(20_000); // warm up allocator pools and the V8 heap
    const rss0 = process.memoryUsage().rss;
    await cycle(100_000);
    const grown = process.memoryUsage().rss - rss0;
    if (process.env.PREFIX_RL_VERBOSE) process.stderr.write(`RSS growth over 100k cycles: ${(grown / 2 ** 20).toFixed(1)} MiB\n`);
    expect(liveTensors()).toBe(before);
    // 200k tensors of 1 KiB each went through: 200 MB had they leaked.
    expect(grown).toBeLessThan(48 * 1024 * 1024);
  });
});

describe('execution model', () => {
  test('a long native op does not block the event loop', async () => {
    const a = Tensor.randn([1024, 1024], 1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = Date.now();
    let product = a;
    const chain = async () => {
      for (let i = 0; i < 12; i++) {
        const next = await product.matmulAsync(a);
        if (product !== a) product.dispose();
        product = next;
      }
    };
    await chain();
    clearInterval(timer);
    const elapsed = Date.now() - started;
    // The timer fired roughly as often as it would have on an idle loop.
    expect(ticks).toBeGreaterThan(Math.floor(elapsed / 5 / 4));
    product.dispose();
    a.dispose();
  });

  test('an aborted queued job rejects with AbortError; the running one completes', async () => {
    const a = Tensor.randn([1024, 1024], 2);
    const controller = new AbortController();
    const first = a.matmulAsync(a);
    const second = a.matmulAsync(a, { signal: controller.signal });
    controller.abort();
    await expect(second).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    const done = await first;
    expect(done.shape).toEqual([1024, 1024]);
    await expect(a.matmulAsync(a, { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    done.dispose();
    a.dispose();
  });

  test('async errors reject with the torch message', async () => {
    const a = Tensor.zeros([2, 3]);
    await expect(a.matmulAsync(a)).rejects.toMatchObject({ code: 'ERR_TORCH' });
    a.dispose();
  });

  test('a tensor disposed while its async op is queued stays valid for that op', async () => {
    const a = Tensor.ones([256, 256]);
    const pending = a.matmulAsync(a);
    a.dispose();
    const result = await pending;
    expect(result.sum().item()).toBe(256 * 256 * 256);
    result.dispose();
  });
});

describe('the native boundary holds at its edges', () => {
  test('a thread count past int range is refused on the JS thread; later jobs run', async () => {
    expect(() => setNumThreads(2 ** 32)).toThrow(/threads must be in \[1, 4096\]/);
    expect(() => setNumThreads(2 ** 53 + 2)).toThrow(/threads must be an integer of at most 2\^53 − 1 in magnitude/);
    expect(() => setNumThreads(1.5)).toThrow(/must be an integer/);
    const a = Tensor.ones([4, 4]);
    const b = await a.matmulAsync(a); // the compute thread still runs (a refused count used to abort the process here)
    expect(b.sum().item()).toBe(64);
    a.dispose();
    b.dispose();
  });

  test('an unlimited buffer cache is no limit, not a cache switched off', () => {
    setBufferCacheLimit(Infinity);
    expect(addon().runtimeInfo().bufferCache.limitBytes).toBeGreaterThan(2 ** 60);
    setBufferCacheLimit(4096 * 2 ** 20);
  });

  test('data() reads a copy of its own, bf16 widened: writing it leaves the tensor', async () => {
    const t = Tensor.from(new Float32Array([1, 2, 3]), [3], { dtype: 'bfloat16' });
    const f = Tensor.from(new Float32Array([1, 2, 3]), [3]);
    for (const tensor of [t, f]) {
      const read = (await tensor.data()) as Float32Array;
      expect(read.constructor.name).toBe('Float32Array'); // (another realm's class under jest)
      expect(Array.from(read)).toEqual([1, 2, 3]);
      read[0] = 9;
      expect(Array.from(tensor.toArray() as Float32Array)).toEqual([1, 2, 3]);
    }
    t.dispose();
    f.dispose();
  });
});
