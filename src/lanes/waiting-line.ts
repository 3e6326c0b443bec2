// The line of requests waiting at one number's governor, kept in order so that a request's place
// (how many are ahead of it) and the first few in line cost O(log n), not a pass over every
// waiter: a campaign to 50,000 contacts on one number has 50,000 waiters asking again and again.
//
// An order-statistic treap: a binary search tree by place in line, balanced by random heap
// priorities, each node knowing its subtree's size. Its priorities come from a private generator,
// so the policy's own random draws (the gaps) do not change with the line's shape.

/** Place in line: transactional before campaign, then first come first served, then by id. */
export type LineKey = { urgent: boolean; firstAt: number; id: string };

type Node = { key: LineKey; priority: number; size: number; left: Node | null; right: Node | null };

const before = (a: LineKey, b: LineKey): boolean => (a.urgent !== b.urgent ? a.urgent : a.firstAt !== b.firstAt ? a.firstAt < b.firstAt : a.id < b.id);

const sizeOf = (n: Node | null) => (n ? n.size : 0);

export class WaitingLine {
  private root: Node | null = null;
  private seed = 0x9e3779b9;
  /** Nodes visited since creation: the work done, for tests that bound it. */
  visits = 0;

  get size(): number {
    return sizeOf(this.root);
  }

  insert(key: LineKey): void {
    const [left, right] = this.split(this.root, key);
    const node: Node = { key, priority: this.nextPriority(), size: 1, left: null, right: null };
    this.root = this.merge(this.merge(left, node), right);
  }

  remove(key: LineKey): void {
    this.root = this.removeFrom(this.root, key);
  }

  /** How many are ahead of `key` in line. */
  ahead(key: LineKey): number {
    let count = 0;
    let n = this.root;
    while (n) {
      this.visits++;
      if (before(n.key, key)) {
        count += sizeOf(n.left) + 1;
        n = n.right;
      } else n = n.left;
    }
    return count;
  }

  /** The keys in line order, first in line first (lazily: stop early to pay only for what is read). */
  *inOrder(): Generator<LineKey> {
    const stack: Node[] = [];
    let n = this.root;
    while (n || stack.length > 0) {
      while (n) {
        this.visits++;
        stack.push(n);
        n = n.left;
      }
      const top = stack.pop() as Node;
      yield top.key;
      n = top.right;
    }
  }

  // xorshift32: cheap, deterministic, good enough to balance a treap.
  private nextPriority(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }

  // [keys before `key`, keys from `key` on].
  private split(n: Node | null, key: LineKey): [Node | null, Node | null] {
    if (!n) return [null, null];
    this.visits++;
    if (before(n.key, key)) {
      const [l, r] = this.split(n.right, key);
      n.right = l;
      n.size = sizeOf(n.left) + sizeOf(n.right) + 1;
      return [n, r];
    }
    const [l, r] = this.split(n.left, key);
    n.left = r;
    n.size = sizeOf(n.left) + sizeOf(n.right) + 1;
    return [l, n];
  }

  // Every key of `a` is before every key of `b`.
  private merge(a: Node | null, b: Node | null): Node | null {
    if (!a) return b;
    if (!b) return a;
    this.visits++;
    if (a.priority > b.priority) {
      a.right = this.merge(a.right, b);
      a.size = sizeOf(a.left) + sizeOf(a.right) + 1;
      return a;
    }
    b.left = this.merge(a, b.left);
    b.size = sizeOf(b.left) + sizeOf(b.right) + 1;
    return b;
  }

  private removeFrom(n: Node | null, key: LineKey): Node | null {
    if (!n) return null;
    this.visits++;
    if (n.key.id === key.id && n.key.urgent === key.urgent && n.key.firstAt === key.firstAt) return this.merge(n.left, n.right);
    if (before(key, n.key)) n.left = this.removeFrom(n.left, key);
    else n.right = this.removeFrom(n.right, key);
    n.size = sizeOf(n.left) + sizeOf(n.right) + 1;
    return n;
  }
}

/** A min-heap of [time, id] for the waiters' expiry; entries made stale by a later retry time are
 *  skipped when they surface (the caller checks), so each update is one O(log n) push. */
export class ExpiryHeap {
  private items: [number, string][] = [];
  /** Sift steps since creation: the work done, for tests that bound it. */
  moves = 0;

  get length(): number {
    return this.items.length;
  }

  push(at: number, id: string): void {
    const items = this.items;
    items.push([at, id]);
    let i = items.length - 1;
    while (i > 0) {
      this.moves++;
      const parent = (i - 1) >> 1;
      if ((items[parent] as [number, string])[0] <= at) break;
      [items[i], items[parent]] = [items[parent] as [number, string], items[i] as [number, string]];
      i = parent;
    }
  }

  peek(): [number, string] | undefined {
    return this.items[0];
  }

  pop(): [number, string] | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || !last) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      this.moves++;
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < items.length && (items[l] as [number, string])[0] < (items[least] as [number, string])[0]) least = l;
      if (r < items.length && (items[r] as [number, string])[0] < (items[least] as [number, string])[0]) least = r;
      if (least === i) break;
      [items[i], items[least]] = [items[least] as [number, string], items[i] as [number, string]];
      i = least;
    }
    return top;
  }

  clear(): void {
    this.items = [];
  }
}
