// node:test for the browser run of the vector tests (tests/web/test_web_vectors.py): the same
// test files, registered here and run in order by window.runVectorTests().
type Fn = () => unknown | Promise<unknown>;
const tests: [string, Fn][] = [];
export function test(name: string, fn: Fn): void {
  tests.push([name, fn]);
}
(globalThis as unknown as { runVectorTests: () => Promise<{ name: string; error: string | null }[]> }).runVectorTests = async () => {
  const out = [];
  for (const [name, fn] of tests) {
    try {
      await fn();
      out.push({ name, error: null });
    } catch (e) {
      out.push({ name, error: `${(e as Error).message}` });
    }
  }
  return out;
};
