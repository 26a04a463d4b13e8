// Math verification at the community graders' standard (issue 19): the kinds of answers Math-Verify, the Qwen2.5-Math
// and PRIME graders and the MATH / PRM800K normalisers accept, written here as our own cases, with the wrong-but-close
// answers they must reject; and verdicts that never depend on what was judged before (a shuffled table, in-process
// and on 1, 2 and 4 workers).
import { VerifierPool } from '../lib/verify/pool.js';
import { verifyMath } from '../lib/verify/index.js';

const box = (answer: string) => `Reasoning.\nSo the final answer is $\\boxed{${answer}}$.`;

// [predicted (boxed), ground truth, accepted?]
const CASES: [string, string, boolean][] = [
  // relations and inequalities, both directions, chained, as intervals
  ['x \\geq 5', 'x >= 5', true],
  ['x \\ge 5', 'x \\geq 5', true],
  ['x >= 5', '5 \\le x', true],
  ['5 \\leq x', 'x \\geq 5', true],
  ['x > 5', 'x \\ge 5', false],
  ['x \\geq 5', 'x \\geq 6', false],
  ['x < 3', '3 > x', true],
  ['x \\lt 3', 'x < 3', true],
  ['x \\leqslant 2', 'x \\le 2', true],
  ['1 < x < 3', '3 > x > 1', true],
  ['1 < x \\le 3', '(1, 3]', true],
  ['(1, 3]', '1 < x \\leq 3', true],
  ['1 < x \\le 3', '(1, 3)', false],
  ['x \\ge 5', '[5, \\infty)', true],
  ['x > 5', '[5, \\infty)', false],
  ['x < 2', '(-\\infty, 2)', true],
  ['x \\le -1', '(-\\infty, -1]', true],
  ['x \\neq 3', 'x \\ne 3', true],
  ['x != 3', '3 \\neq x', true],
  ['x \\neq 3', 'x \\neq 4', false],
  ['x \\geq \\frac{1}{2}', 'x \\ge 0.5', true],
  ['y \\geq 5', 'x \\geq 5', false],
  // labelled answers
  ['(3,2)', '(p,q)=(3,2)', true],
  ['(p,q)=(3,2)', '(3,2)', true],
  ['(2,3)', '(p,q)=(3,2)', false],
  ['x = 5', '5', true],
  ['5', 'x=5', true],
  ['k_1 = 2', '2', true],
  ['f(x) = 2x+1', '2x+1', true],
  ['2x+1', 'f(x)=2x+1', true],
  ['f(x) = 2x+1', '2x+2', false],
  ['x = 5', 'x = 5.0', true],
  ['y = 5', 'x = 6', false],
  // equations: sides swapped, scaled by a nonzero constant
  ['y = 2x + 1', '2x + 1 = y', true],
  ['2y = 4x + 2', 'y = 2x + 1', true],
  ['x + y = 1', '2x + 2y = 2', true],
  ['x + y = 1', 'x + y = 2', false],
  ['x^2 + y^2 = 1', 'y^2 + x^2 = 1', true],
  ['x^2 + y^2 = 4', 'x^2 + y^2 = 1', false],
  ['y = -x', 'x + y = 0', true],
  ['y = x', 'y = -x', false],
  // subscripted symbols (and the engine state they used to leave behind)
  ['v_0 r_0', 'r_0 v_0', true],
  ['2r', 'r+r', true],
  ['x_1 + x_2', 'x_2 + x_1', true],
  ['x_1 + x_2', 'x_1 + x_3', false],
  ['v_{max}', 'v_{max}', true],
  ['\\frac{v_0^2}{2g}', '\\frac{v_0^2}{2 g}', true],
  ['\\log_2 8', '3', true],
  ['a_n', 'a_{n}', true],
  // thousands separators and LaTeX spacing
  ['11111', '11,\\! 111', true],
  ['11,\\!111', '11111', true],
  ['1{,}000', '1000', true],
  ['1,000,000', '1000000', true],
  ['11,\\! 111', '11,112', false],
  ['1\\,000', '1000', true],
  // percent forms
  ['50\\%', '50', true],
  ['50 percent', '50\\%', true],
  ['50\\%', '0.5', true],
  ['50\\%', '5', false],
  ['12.5\\%', '12.5', true],
  // exact decimals and rounded answers
  ['1', '1.0001', false],
  ['0.5', '\\frac{1}{2}', true],
  ['0.25', '\\frac14', true],
  ['0.3333', '\\frac{1}{3}', true],
  ['0.333', '\\frac{1}{3}', false],
  ['0.6667', '\\frac{2}{3}', true],
  ['0.6666', '\\frac{2}{3}', false],
  ['3.1416', '\\pi', true],
  ['3.1415', '\\pi', false],
  ['2.7183', 'e', true],
  ['1.7321', '\\sqrt{3}', true],
  ['1.732', '\\sqrt{3}', true],
  ['1.733', '\\sqrt{3}', false],
  ['0.125', '\\frac{1}{8}', true],
  ['0.1249', '\\frac{1}{8}', false],
  // units and \text{}
  ['5 \\text{ cm}', '5', true],
  ['\\text{5 cm}', '5', true],
  ['12 \\text{ dollars}', '12', true],
  ['\\$12', '12', true],
  ['6 \\text{ cm}^2', '6', true],
  ['7 \\text{ cm}', '8', false],
  // a right number with a wrong unit, where both give one
  ['5 \\text{ km}', '5 \\text{ m}', false],
  ['5 \\text{ cm}', '5 \\text{ centimeters}', true],
  ['5 cm', '5 \\text{cm}', true],
  ['6 \\text{ square feet}', '6 \\text{ ft}^2', true],
  ['6 \\text{ square feet}', '6 \\text{ ft}', false],
  ['3 \\text{ hours}', '3 \\text{ minutes}', false],
  ['12 \\text{ inches}', '12 \\text{ in}', true],
  // partial answers and extra solutions
  ['x = 1, 2, 3', '1, 2', false],
  ['2', '2, -2', false],
  ['(1, 2, 3)', '(1, 2)', false],
  ['x = 2', 'x = 2, x = -2', false],
  // degrees and pi forms
  ['30^\\circ', '30', true],
  ['30^{\\circ}', '30', true],
  ['\\frac{\\pi}{6}', '\\frac{1}{6}\\pi', true],
  ['\\frac{\\pi}{6}', '\\frac{\\pi}{3}', false],
  ['2\\pi', '2 \\pi', true],
  ['\\pi/2', '\\frac{\\pi}{2}', true],
  // complex numbers
  ['1 + 2i', '2i + 1', true],
  ['1 - 2i', '1 + 2i', false],
  ['\\frac{1}{2} + \\frac{\\sqrt{3}}{2}i', '\\frac{1+i\\sqrt{3}}{2}', true],
  ['i^2', '-1', true],
  ['1 + 2j', '1 + 2i', true],
  ['1 + 2i', '1 + 2j', true],
  ['1 + 3j', '1 + 2i', false],
  ['2j + 1', '2j + 1', true],
  ['2j', '2i', true],
  // sets, tuples, intervals
  ['\\{1, 2, 3\\}', '\\{3, 2, 1\\}', true],
  ['\\{1, 2\\}', '\\{1, 2, 3\\}', false],
  ['(1, 2)', '(2, 1)', false],
  ['[1, 2]', '[1, 2)', false],
  ['(-\\infty, 0) \\cup (1, \\infty)', '(1, \\infty) \\cup (-\\infty, 0)', true],
  ['1, 2', '2, 1', true],
  ['1, 2', '1, 2, 3', false],
  ['x = 1, 2', '1, 2', true],
  // roots and radicals
  ['2\\sqrt{2}', '\\sqrt{8}', true],
  ['\\sqrt{8}', '2\\sqrt{3}', false],
  ['\\frac{\\sqrt{2}}{2}', '\\frac{1}{\\sqrt{2}}', true],
  ['3\\sqrt{3}', '\\sqrt{27}', true],
  ['\\pm 2', '2, -2', true],
  ['\\pm 2', '2', false],
  // algebraic expressions
  ['(x+1)^2', 'x^2 + 2x + 1', true],
  ['(x+1)^2', 'x^2 + 1', false],
  ['\\frac{x^2-1}{x-1}', 'x + 1', true],
  ['2(x+3)', '2x + 6', true],
  ['\\frac{1}{x} + \\frac{1}{y}', '\\frac{x+y}{xy}', true],
  ['x^{2}y', 'yx^2', true],
  // fractions and mixed numbers
  ['\\frac{7}{2}', '3\\frac{1}{2}', true],
  ['3 1/2', '\\frac{7}{2}', true],
  ['3 1/2', '3.5', true],
  ['3 1/3', '\\frac{7}{2}', false],
  ['\\frac{7}{2}', '3.5', true],
  ['-\\frac{3}{4}', '\\frac{-3}{4}', true],
  ['\\frac{3}{4}', '\\frac{4}{3}', false],
  // big integers stay exact
  ['123456789012345678901', '123456789012345678901', true],
  ['123456789012345678901', '123456789012345678902', false],
  // number words, times of day, multiple-choice letters, other bases
  ['five', '5', true],
  ['\\text{twenty-one}', '21', true],
  ['Forty two', '42', true],
  ['five', '6', false],
  ['3:30 PM', '15:30', true],
  ['3:30\\text{ p.m.}', '15:30', true],
  ['12:15 AM', '0:15', true],
  ['3:30 AM', '15:30', false],
  ['(C)', 'C', true],
  ['\\text{(C)}', 'C', true],
  ['C', '(C)', true],
  ['(B)', 'C', false],
  ['\\textbf{(D)}', 'D', true],
  ['1011_2', '1011_{2}', true],
  ['1011_2', '1010_2', false],
  ['1011_2', '11', false],
  ['123_{8}', '123_8', true],
  // matrices
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}', true],
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\begin{pmatrix} 1 & 2 \\\\ 4 & 3 \\end{pmatrix}', false],
  ['\\begin{pmatrix} \\frac{1}{2} \\\\ 1 \\end{pmatrix}', '\\begin{pmatrix} 0.5 \\\\ 1 \\end{pmatrix}', true],
  // matrix expressions are evaluated (constant cells): products, inverses, transposes, powers, sums, scalar multiples
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}', '\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}', true],
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}', '\\begin{pmatrix} 2 \\\\ 4 \\end{pmatrix}', false],
  ['\\begin{pmatrix} 2 & 0 \\\\ 0 & 4 \\end{pmatrix}^{-1}', '\\begin{pmatrix} \\frac{1}{2} & 0 \\\\ 0 & \\frac{1}{4} \\end{pmatrix}', true],
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}^{T}', '\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}', true],
  ['2\\begin{pmatrix} 1 & 2 \\end{pmatrix}', '\\begin{pmatrix} 2 & 4 \\end{pmatrix}', true],
  ['\\begin{pmatrix} 1 & 1 \\\\ 0 & 1 \\end{pmatrix}^{3}', '\\begin{pmatrix} 1 & 3 \\\\ 0 & 1 \\end{pmatrix}', true],
  [
    '\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix} + \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}',
    '\\begin{pmatrix} 2 & 2 \\\\ 3 & 5 \\end{pmatrix}',
    true,
  ],
  ['\\begin{pmatrix} 1 & 2 \\\\ 2 & 4 \\end{pmatrix}^{-1}', '\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}', false],
  ['\\begin{pmatrix} x & 0 \\\\ 0 & 1 \\end{pmatrix}\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}', '\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}', false],
];

// A "final answer" sentence: the mathematical answer in it counts, not the sentence.
const RESPONSES: [string, string, boolean][] = [
  ['Final Answer: The final answer is $5$. I hope it is correct.', '5', true],
  ['Final Answer: The final answer is $6$. I hope it is correct.', '5', false],
  ['So the answer is $\\frac{1}{2}$.', '0.5', true],
  ['The answer is 12.', '12', true],
  ['Therefore, the final answer is: $\\boxed{42}$', '42', true],
  ['We try \\boxed{3} first, but the answer is \\boxed{4}.', '4', true],
  ['We try \\boxed{3} first, but the answer is \\boxed{4}.', '3', false],
  ['No final answer here, the value is 7', '7', false],
  ['Work.\nAnswer: 17', '17', true],
  ['Work.\nAnswer: $\\frac{3}{4}$', '0.75', true],
  ['Answer the question: 2 + 2 is 4', '4', false],
  ['So the answer is 12 apples.', '12', true],
  ['So the answer is 7 ways to arrange them.', '7', true],
  ['So the answer is 13 apples.', '12', false],
  ['Final answer: the area is 12 square units.', '12', true],
  ['Final answer: the total number of ways is 35', '35', true],
  ['Final answer: the area is 13', '12', false],
  [`So the answer is $\\boxed{${'1+'.repeat(1500)}1}$`, '1501', false],
  ['The final answer is x = 3 or x = 4', '3, 4', true],
];

describe('math answers the community graders accept, and their near misses', () => {
  test.each(CASES)('%s vs %s → %s', (predicted, truth, expected) => {
    expect(verifyMath(box(predicted), truth).status).toBe(expected ? 'pass' : 'fail');
  });
  test.each(RESPONSES)('response %j vs %s → %s', (response, truth, expected) => {
    expect(verifyMath(response, truth).status).toBe(expected ? 'pass' : 'fail');
  });
});

describe('every verdict is independent of every other', () => {
  // Shuffled orders of the table: a verdict must not depend on what the engine saw before it.
  const table = CASES.map(([predicted, truth]) => ({ response: box(predicted), truth }));
  const shuffled = (seed: number) => {
    const order = table.map((_, i) => i);
    let state = seed;
    for (let i = order.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const j = state % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  };
  const expected = CASES.map(([, , accepted]) => (accepted ? 'pass' : 'fail'));

  test('in-process, in three orders', () => {
    for (const seed of [1, 2, 3]) {
      const verdicts: string[] = [];
      for (const i of shuffled(seed)) verdicts[i] = verifyMath(table[i].response, table[i].truth).status;
      expect(verdicts).toEqual(expected);
    }
  });

  test.each([1, 2, 4])(
    'on %i worker(s)',
    async (workers) => {
      const pool = new VerifierPool({ workers });
      try {
        const order = shuffled(10 + workers);
        const results = await Promise.all(order.map((i) => pool.verify({ kind: 'math', response: table[i].response, groundTruth: table[i].truth })));
        const verdicts: string[] = [];
        order.forEach((i, k) => (verdicts[i] = results[k].status));
        expect(verdicts).toEqual(expected);
      } finally {
        await pool.close();
      }
    },
    60_000,
  );
});
