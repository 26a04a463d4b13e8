import { extractMathAnswer, lastBoxed, mathAnswersEqual, verify, verifyControlled, verifyMath } from '../lib/verify/index.js';

const box = (answer: string) => `Some reasoning first.\nSo the final answer is $\\boxed{${answer}}$.`;

// [predicted answer (boxed into a response), ground truth, same answer?]
const EQUIVALENT_FORMS: [string, string, boolean][] = [
  // identical and trivially different spelling
  ['42', '42', true],
  ['42', '43', false],
  ['-7', '-7', true],
  ['-7', '7', false],
  [' 42 ', '42', true],
  ['42.', '42', true],
  ['42.0', '42', true],
  ['042', '42', true],
  // fractions
  ['\\frac{1}{2}', '0.5', true],
  ['\\dfrac{1}{2}', '\\frac{1}{2}', true],
  ['\\tfrac{1}{2}', '\\frac12', true],
  ['\\frac12', '\\frac{1}{2}', true],
  ['\\frac1{2}', '1/2', true],
  ['1/2', '\\frac{1}{2}', true],
  ['\\frac{2}{4}', '\\frac{1}{2}', true],
  ['\\frac{-1}{2}', '-\\frac{1}{2}', true],
  ['\\frac{1}{2}', '\\frac{1}{3}', false],
  ['\\frac{3}{2}', '1.5', true],
  ['\\frac{7}{3}', '2\\frac{1}{3}', true],
  // decimals
  ['.5', '0.5', true],
  ['0.50', '.5', true],
  ['0.25', '\\frac{1}{4}', true],
  ['0.2', '\\frac{1}{4}', false],
  // radicals
  ['\\sqrt2', '\\sqrt{2}', true],
  ['\\frac{\\sqrt{3}}{2}', '\\sqrt{3}/2', true],
  ['\\frac{1}{\\sqrt{2}}', '\\frac{\\sqrt{2}}{2}', true],
  ['2\\sqrt{2}', '\\sqrt{8}', true],
  ['\\sqrt{12}', '2\\sqrt{3}', true],
  ['\\sqrt{3}', '3', false],
  ['\\sqrt[3]{27}', '3', true],
  ['sqrt(3)/2', '\\frac{\\sqrt{3}}{2}', true],
  // pi and constants
  ['2\\pi', '\\pi*2', true],
  ['2\\pi', '\\pi \\cdot 2', true],
  ['\\frac{\\pi}{2}', '\\pi/2', true],
  ['2pi', '2\\pi', true],
  ['3.14', '\\pi', false],
  ['3.1416', '\\pi', true],
  ['\\pi', '3', false],
  ['e^2', '\\mathrm{e}^2', true],
  // wrong but close, and the 1e-4 relative tolerance
  ['0.333', '\\frac{1}{3}', false],
  ['0.33333', '\\frac{1}{3}', true],
  ['1.4142', '\\sqrt{2}', true],
  ['1.41', '\\sqrt{2}', false],
  ['100001', '100000', false],
  ['999', '1000', false],
  // Two decimal literals are exact values: a different one never passes, however close.
  ['1000.01', '1000', false],
  ['1', '1.0001', false],
  ['1.0001', '1', false],
  ['2.50', '2.5', true],
  ['0.33334', '\\frac{1}{3}', false],
  ['0.3333', '\\frac{1}{3}', true],
  ['10^{5}', '100001', false],
  ['2^{10}', '1024', true],
  // integer arithmetic is exact beyond 2^53
  ['18446744073709551617', '2^{64}', false],
  ['18446744073709551616', '2^{64}', true],
  ['2^{64}', '18446744073709551615', false],
  ['10^{20}', '10^{20}+1', false],
  ['2^{1000}', '2^{1000}+1', false],
  ['2^{1000}+1', '1+2^{1000}', true],
  ['2^{2^{5}} \\cdot 3', '12884901888', true],
  ['-2^{62} \\times 4', '-18446744073709551617', false],
  ['(10^{9}+7)(10^{9}+9)', '1000000016000000063', true],
  ['(10^{9}+7)(10^{9}+9)', '1000000016000000064', false],
  // thousands separators
  ['1,000', '1000', true],
  ['1{,}000', '1000', true],
  ['1\\,000', '1000', true],
  ['1,000,000', '10^6', true],
  ['12,345.5', '12345.5', true],
  // percent
  ['50\\%', '50', true],
  ['50\\%', '0.5', true],
  ['0.5', '50\\%', true],
  ['50%', '\\frac{1}{2}', true],
  ['50 percent', '50', true],
  ['2', '200', false],
  ['50\\%', '0.05', false],
  // a percent on one side reads as p or p/100, never p·100 (as Math-Verify)
  ['0.1', '10\\%', true],
  ['10', '10\\%', true],
  ['10\\%', '0.1', true],
  ['10\\%', '10', true],
  ['1000', '10\\%', false],
  ['10', '0.1\\%', false],
  ['2500', '25\\%', false],
  ['10\\%', '1000', false],
  ['0.1\\%', '10', false],
  ['25\\%', '2500', false],
  ['10\\%', '0.1\\%', false],
  ['\\frac{1}{10}', '10\\%', true],
  ['1000', '10^{1}\\%', false],
  // degrees
  ['30^\\circ', '30', true],
  ['30^{\\circ}', '30', true],
  ['30°', '30', true],
  ['30 degrees', '30', true],
  ['30^\\circ', '60', false],
  // units, text, currency
  ['5\\text{ cm}', '5', true],
  ['5 \\text{cm}^2', '5', true],
  ['12 \\mbox{ inches}', '12', true],
  ['10 dollars', '10', true],
  ['\\$10', '10', true],
  ['\\$10.50', '10.5', true],
  ['7 square units', '7', true],
  ['5\\text{ cm}', '6', false],
  ['\\text{Devon}', 'Devon', true],
  ['\\text{Monday}', '\\text{Tuesday}', false],
  ['\\text{(C)}', 'C', true],
  ['(B)', 'C', false],
  // spacing and sizing commands
  ['\\left( 1, 2 \\right)', '(1,2)', true],
  ['3\\!\\cdot\\!4', '12', true],
  ['x\\,+\\,1', '1+x', true],
  ['\\displaystyle \\frac{1}{4}', '0.25', true],
  // variables named on the left
  ['x = 3', '3', true],
  ['3', 'x=3', true],
  ['k = 5', '5', true],
  ['x = 4', '3', false],
  ['y = 2x + 3', 'y = 3 + 2x', true],
  ['y = 2x + 3', 'y = 2x - 3', false],
  ['x + y = 1', 'y = 1 - x', true],
  // polynomials and expressions
  ['x^2+2x+1', '(x+1)^2', true],
  ['x^2-1', '(x-1)(x+1)', true],
  ['x^2+2x+1', '(x+1)^3', false],
  ['x^2', 'y^2', false],
  ['\\frac{x+2}{7}', '\\frac{x}{7}+\\frac{2}{7}', true],
  ['2x', 'x+x', true],
  ['\\sin^2 x + \\cos^2 x', '1', true],
  ['\\sec^2 y', '\\tan^2 y + 1', true],
  ['\\frac{1}{x}', 'x^{-1}', true],
  ['\\log_2 8', '3', true],
  ['\\ln(e^3)', '3', true],
  ['ab', 'ba', true],
  // tuples and points
  ['(1,2)', '(1, 2)', true],
  ['(1,2)', '(2,1)', false],
  ['(1, 4.5)', '(1, \\frac{9}{2})', true],
  ['(1,2,3)', '(1,2)', false],
  ['1, 2', '(1,2)', true],
  ['\\left(\\frac{1}{2}, -3\\right)', '(0.5,-3)', true],
  ['\\langle 1, 2 \\rangle', '(1,2)', true],
  // intervals
  ['[1,3)', '[1, 3)', true],
  ['(1,3)', '[1,3)', false],
  ['[1,3]', '[1,3)', false],
  ['(-\\infty, 2]', '\\left(-\\infty,2\\right]', true],
  ['(-\\infty, 2)', '(-\\infty, 2]', false],
  ['(-\\infty,1)\\cup(2,\\infty)', '(2,\\infty) \\cup (-\\infty,1)', true],
  ['(-\\infty,1)\\cup(2,\\infty)', '(-\\infty,1]\\cup(2,\\infty)', false],
  ['(-\\infty,\\infty)', '\\mathbb{R}', true],
  ['x \\in [0, 1]', '[0,1]', true],
  // sets and lists of answers
  ['\\{1,2\\}', '\\{2,1\\}', true],
  ['\\{1,2\\}', '\\{1,2,3\\}', false],
  ['2, 1', '1,2', true],
  ['1, 2', '1, 3', false],
  ['1 \\text{ and } 2', '1, 2', true],
  ['x = 1 \\text{ or } x = 2', '1, 2', true],
  ['-2, 2', '\\pm 2', true],
  ['1 \\pm \\sqrt{2}', '1+\\sqrt2, 1-\\sqrt2', true],
  ['1 + \\sqrt{2}', '1 \\pm \\sqrt{2}', false],
  ['\\emptyset', '\\{\\}', true],
  ['\\varnothing', '\\emptyset', true],
  // matrices
  ['\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}', '\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', true],
  ['\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}', '\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}', true],
  ['\\begin{pmatrix}\\frac12\\\\-1\\end{pmatrix}', '\\begin{pmatrix}0.5\\\\-1\\end{pmatrix}', true],
  ['\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}', '\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}', false],
  // complex numbers
  ['3i+2', '2+3i', true],
  ['2-3i', '2+3i', false],
  // infinity
  ['\\infty', '\\infty', true],
  ['-\\infty', '\\infty', false],
  ['\\frac{1}{0}', '\\infty', false],
  // more degrees, binomials, factorials, notation
  ['\\cos(60^\\circ)', '\\frac12', true],
  ['30^\\circ, 150^\\circ', '150, 30', true],
  ['\\binom{5}{2}', '10', true],
  ['{6 \\choose 3}', '20', true],
  ['4!', '24', true],
  ['x=2, y=3', '(2,3)', true],
  ['\\text{no solution}', '\\text{No solution}', true],
  ['1e-3', '0.001', true],
  ['3 \\times 10^{5}', '300000', true],
  ['1/3', '0.3', false],
  ['\\frac{1}{-2}', '-\\frac{1}{2}', true],
  // sign-sensitive identities: samples include negative values
  ['\\sqrt{x^2}', 'x', false],
  ['\\sqrt{x^2}', '|x|', true],
  // a unit letter is only a unit after a space
  ['5 m', '5', true],
  ['5m', '5', false],
];

describe('math answer equivalence', () => {
  test('the table is large enough to mean something', () => {
    expect(EQUIVALENT_FORMS.length).toBeGreaterThanOrEqual(100);
  });

  test.each(EQUIVALENT_FORMS)('%s vs %s → %s', (predicted, truth, expected) => {
    expect(verifyMath(box(predicted), truth).status).toBe(expected ? 'pass' : 'fail');
  });

  test('huge numbers get a quick verdict, never an error', async () => {
    const started = Date.now();
    for (const [answer, truth, status] of [
      ['1e999999999999', '1', 'fail'],
      ['1e400000000', '1', 'fail'],
      ['1e400000000', '10e399999999', 'pass'],
      ['1e400000000', '1e400000001', 'fail'],
      ['1e99999999999999999999999', '1e99999999999999999999998', 'fail'],
      ['0e999999999999', '0', 'pass'],
      ['10^{400000000}', '1', 'fail'],
      ['10^{400000000}', '10^{400000000}+1', 'fail'],
      ['2^{10^{12}}', '2^{10^{12}}+1', 'fail'],
      // against expressions: the engine would write the literal out digit by digit (an error, or out of memory)
      ['1e999999999999', '\\frac{1}{2}', 'fail'],
      ['1e400000000', '2^{3}', 'fail'],
      ['2\\times10^{999999999999}', '1', 'fail'],
      ['1.5\\times 10^{99999999}', '\\pi', 'fail'],
      ['999999999999!', '1', 'fail'],
      ['1.5e3', '\\frac{3000}{2}', 'pass'],
    ]) {
      expect((await verify({ kind: 'math', response: box(answer), groundTruth: truth })).status).toBe(status);
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('an answer the engine gives up on (its time limit) fails; it is not a verifier error', async () => {
    expect(await verify({ kind: 'math', response: box('(10^{6})!'), groundTruth: '1' })).toMatchObject({ status: 'fail' });
  });

  test('empty answers never match', () => {
    expect(mathAnswersEqual('', '')).toBe(false);
    expect(mathAnswersEqual('\\text{}', '5')).toBe(false);
  });
});

describe('final answer extraction', () => {
  test.each([
    ['\\boxed{5}', '5'],
    ['first \\boxed{3}, then \\boxed{4}', '4'],
    ['\\boxed{\\frac{1}{2}}', '\\frac{1}{2}'],
    ['\\boxed{\\{1, 2\\}}', '\\{1, 2\\}'],
    ['$\\boxed 5$.', '5'],
    ['\\fbox{7}', '7'],
    ['\\boxed {6}', '6'],
    ['\\boxed{\\boxed{8}}', '8'],
    ['The answer is 12.', '12'],
    ['Final Answer: $\\frac{3}{4}$', '\\frac{3}{4}'],
    ['The final answer is $9$. I hope it is correct.', '9'],
    ['so the answer is \\(x+1\\)', 'x+1'],
    ['The answer is 2.\nThen: the answer is 3.', '3'],
  ])('%j → %j', (response, answer) => {
    expect(extractMathAnswer(response)).toBe(answer);
  });

  test.each([
    ['no final answer here', null],
    ['\\boxed{5', null], // truncated: the last box never closes
    ['\\boxed{3} and then \\boxed{4', null],
    ['\\boxed', null],
  ])('%j has no answer', (response, answer) => {
    expect(lastBoxed(response)).toBe(answer);
  });

  test('the last box counts, even when an earlier one was right', () => {
    expect(verifyMath('\\boxed{2} ... no wait, \\boxed{3}', '2').status).toBe('fail');
    expect(verifyMath('\\boxed{3} ... no wait, \\boxed{2}', '2').status).toBe('pass');
  });

  test('a response without an answer fails with extracted null', () => {
    expect(verifyMath('I do not know.', '2')).toEqual({ status: 'fail', extracted: null, detail: 'no final answer in the response' });
  });

  test('a boxed ground truth is unboxed', () => {
    expect(verifyMath('\\boxed{\\frac{1}{2}}', 'the answer is $\\boxed{0.5}$').status).toBe('pass');
  });

  test('a pass reports the extracted answer', () => {
    expect(verifyMath(box('\\frac{1}{2}'), '0.5')).toEqual({ status: 'pass', extracted: '\\frac{1}{2}' });
  });
});

describe('controlled task verifier', () => {
  test.each([
    ['Step 1: 7+5=12\nStep 2: 12*3=36\nAnswer: \\boxed{36}', '36', 'pass'],
    ['Answer: \\boxed{36}', '35', 'fail'],
    ['Answer: \\boxed{36.0}', '36', 'fail'],
    ['Answer: \\boxed{ 36}', '36', 'fail'],
    ['Answer: \\boxed{\\frac{72}{2}}', '36', 'fail'],
    ['Answer: 36', '36', 'fail'],
    ['Answer: \\boxed{12} then \\boxed{36}', '36', 'pass'],
    ['Answer: \\boxed{36} then \\boxed{12}', '36', 'fail'],
    ['Answer: \\boxed{-4}', '-4', 'pass'],
    ['Answer: \\boxed{123456789012345678901}', '123456789012345678901', 'pass'],
    ['Answer: \\boxed{123456789012345678901}', '123456789012345678902', 'fail'],
  ])('%j vs %s → %s', (response, truth, status) => {
    expect(verifyControlled(response, truth).status).toBe(status);
  });

  test('a non-integer ground truth is a request error', () => {
    expect(verifyControlled('\\boxed{1}', 'one').status).toBe('error');
  });
});
