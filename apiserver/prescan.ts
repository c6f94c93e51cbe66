// Pre-parse scanner: every JSON or YAML text from a client or an upstream registry goes through
// here before a parser sees it. One linear pass over the bytes, no regular expressions, no
// recursion: the size, the nesting depth, the number of YAML anchors and aliases and the number of
// YAML documents. The parsers themselves recurse (the `yaml` package overflows the stack somewhere
// near 900 block levels, and an overflow inside V8's regular-expression compiler is fatal), so the
// depth must be known before they start. Limits are not Kubernetes' own (kube checks 3 MiB per
// request and sigs.k8s.io/json stops at 10000 levels) but those this server promises in the README.

/** Largest request body and stored object: kube-apiserver's 3 MiB (etcd's default request limit 1.5 MiB × 2). */
export const MAX_BYTES = 3 * 1024 * 1024;
/** Deepest nesting of arrays/objects (JSON) or collections (YAML). */
export const MAX_DEPTH = 512;
/** YAML anchors plus aliases in one text. */
export const MAX_YAML_ALIASES = 1000;

export type LimitName = 'size' | 'depth' | 'aliases' | 'documents';

export class PrescanError extends Error {
  constructor(
    readonly limit: LimitName,
    message: string,
  ) {
    super(message);
  }
}

export interface PrescanLimits {
  maxBytes?: number;
  maxDepth?: number;
  maxAliases?: number;
  /** YAML documents allowed in the stream; 1 for request bodies and descriptors. */
  maxDocuments?: number;
}

const SP = 0x20,
  TAB = 0x09,
  LF = 0x0a,
  CR = 0x0d,
  HASH = 0x23,
  DQ = 0x22,
  SQ = 0x27,
  BS = 0x5c,
  LBRACK = 0x5b,
  RBRACK = 0x5d,
  LBRACE = 0x7b,
  RBRACE = 0x7d,
  COMMA = 0x2c,
  COLON = 0x3a,
  DASH = 0x2d,
  QMARK = 0x3f,
  AMP = 0x26,
  STAR = 0x2a,
  BANG = 0x21,
  PIPE = 0x7c,
  GT = 0x3e,
  DOT = 0x2e,
  PCT = 0x25;

const bytesOf = (b: Buffer | string): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b);

function sizeCheck(buf: Buffer, max: number, what: string) {
  if (buf.length > max) throw new PrescanError('size', `${what} is ${buf.length} bytes, over the limit of ${max} bytes`);
}
const depthError = (max: number, what: string) => new PrescanError('depth', `${what} nests deeper than the limit of ${max} levels`);

/** Checks a JSON text: size and nesting depth (strings skipped, escapes honoured). */
export function prescanJson(input: Buffer | string, what = 'the object', o: PrescanLimits = {}): void {
  const buf = bytesOf(input);
  const maxDepth = o.maxDepth ?? MAX_DEPTH;
  sizeCheck(buf, o.maxBytes ?? MAX_BYTES, what);
  let depth = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === DQ) {
      for (i++; i < buf.length && buf[i] !== DQ; i++) if (buf[i] === BS) i++;
    } else if (c === LBRACK || c === LBRACE) {
      if (++depth > maxDepth) throw depthError(maxDepth, what);
    } else if (c === RBRACK || c === RBRACE) depth--;
  }
}

const isBlank = (c: number | undefined) => c === undefined || c === SP || c === TAB || c === LF || c === CR;

/**
 * Checks a YAML text: size, nesting depth, anchors and aliases, documents. The depth is an upper
 * bound of the real one: every block collection is one level (tracked by indentation, and by the
 * column of compact `- - x` and `- k: v` entries), every flow `[`/`{` one more. Quoted scalars
 * (which may span lines), comments and block scalars (`|`, `>`) are skipped.
 */
export function prescanYaml(input: Buffer | string, what = 'the object', o: PrescanLimits = {}): void {
  const buf = bytesOf(input);
  const n = buf.length;
  const maxDepth = o.maxDepth ?? MAX_DEPTH;
  const maxAliases = o.maxAliases ?? MAX_YAML_ALIASES;
  const maxDocs = o.maxDocuments ?? 1;
  sizeCheck(buf, o.maxBytes ?? MAX_BYTES, what);

  // Block collections open at this point: their indentation (column) and whether a sequence.
  const cols: number[] = [];
  const seq: boolean[] = [];
  let aliases = 0;
  let docs = 0;
  let inDoc = false;
  let flow = 0;
  let blockScalarAbove = -2; // inside a block scalar: lines indented more than this belong to it

  const push = (col: number, isSeq: boolean) => {
    cols.push(col);
    seq.push(isSeq);
    if (cols.length + flow > maxDepth) throw depthError(maxDepth, what);
  };
  const alias = () => {
    if (++aliases > maxAliases) throw new PrescanError('aliases', `${what} has more than ${maxAliases} YAML anchors and aliases`);
  };
  const startDoc = () => {
    if (++docs > maxDocs) throw new PrescanError('documents', maxDocs === 1 ? `${what} must be a single YAML document` : `${what} has more than ${maxDocs} YAML documents`);
  };
  /** Skips a quoted scalar starting at i (the quote); returns the index after its closing quote. */
  const skipQuoted = (i: number): number => {
    const q = buf[i];
    for (i++; i < n; i++) {
      const c = buf[i];
      if (q === DQ && c === BS) i++;
      else if (c === q) {
        if (q === SQ && buf[i + 1] === SQ) i++;
        else return i + 1;
      }
    }
    return n;
  };
  /**
   * Scans flow content from i (just after the opening bracket of the outermost collection, already
   * counted in `flow`); returns the index after its closing bracket. A `k: v` pair inside a flow
   * sequence is a mapping of its own, one level more until the next `,` or `]`.
   */
  const scanFlow = (i: number, open: number): number => {
    const kinds: number[] = [open]; // LBRACK, LBRACE or COLON (an implicit pair in a sequence)
    let prev = LBRACK; // the last structural byte: aliases and anchors count only where a node starts
    for (; i < n; i++) {
      const c = buf[i];
      if ((c === DQ || c === SQ) && prev !== 0) {
        i = skipQuoted(i) - 1; // a quote inside a plain scalar is just a character
        prev = 0;
      } else if (c === HASH && isBlank(buf[i - 1])) {
        while (i < n && buf[i] !== LF) i++;
      } else if (c === LBRACK || c === LBRACE) {
        if (cols.length + ++flow > maxDepth) throw depthError(maxDepth, what);
        kinds.push(c);
        prev = c;
      } else if (c === RBRACK || c === RBRACE) {
        prev = c;
        if (kinds[kinds.length - 1] === COLON) {
          kinds.pop();
          flow--;
        }
        kinds.pop();
        if (--flow === 0) return i + 1;
      } else if (c === COMMA) {
        if (kinds[kinds.length - 1] === COLON) {
          kinds.pop();
          flow--;
        }
        prev = c;
      } else if (c === COLON) {
        if (kinds[kinds.length - 1] === LBRACK) {
          if (cols.length + ++flow > maxDepth) throw depthError(maxDepth, what);
          kinds.push(COLON);
        }
        prev = c;
      } else if ((c === AMP || c === STAR) && (prev !== 0 || isBlank(buf[i - 1]))) {
        alias();
        prev = 0;
      } else if (!isBlank(c)) prev = 0;
    }
    return n;
  };

  let i = 0;
  while (i < n) {
    // One line per turn (a flow collection or a quoted scalar may carry the scan over several).
    let col = 0;
    while (i + col < n && buf[i + col] === SP) col++;
    let p = i + col;
    const c0 = buf[p];
    const blank = p >= n || c0 === LF || c0 === CR || c0 === HASH;
    if (col === 0) {
      const marker = (c0 === DASH || c0 === DOT) && buf[p + 1] === c0 && buf[p + 2] === c0 && isBlank(buf[p + 3]);
      if (marker) {
        cols.length = seq.length = 0;
        blockScalarAbove = -2;
        if (c0 === DOT) {
          inDoc = false;
          while (i < n && buf[i] !== LF) i++;
          i++;
          continue;
        }
        startDoc();
        inDoc = true;
        p += 3;
      }
    }
    if (blockScalarAbove > -2 && (blank || col > blockScalarAbove)) {
      while (i < n && buf[i] !== LF) i++;
      i++;
      continue;
    }
    blockScalarAbove = -2;
    if (blank) {
      while (i < n && buf[i] !== LF) i++;
      i++;
      continue;
    }
    if (col === 0 && c0 === PCT && !inDoc) {
      while (i < n && buf[i] !== LF) i++; // a directive
      i++;
      continue;
    }
    if (!inDoc) {
      startDoc();
      inDoc = true;
    }
    // The line's node at `col`: close deeper collections, then open or continue one.
    while (cols.length && cols[cols.length - 1] > col) {
      cols.pop();
      seq.pop();
    }
    const dash = (buf[p] === DASH || buf[p] === QMARK) && isBlank(buf[p + 1]);
    const top = cols.length ? cols[cols.length - 1] : -1;
    if (dash) {
      if (top < col || !seq[seq.length - 1]) push(col, true); // a new sequence, or one inside a mapping at the same column
    } else {
      if (top === col && seq[seq.length - 1]) {
        cols.pop();
        seq.pop();
      }
      if ((cols.length ? cols[cols.length - 1] : -1) < col) push(col, false);
    }
    // The rest of the line, node by node.
    let nodeStart = true;
    let first = true;
    for (; p < n && buf[p] !== LF; ) {
      const c = buf[p];
      if (c === SP || c === TAB || c === CR) {
        p++;
        continue;
      }
      if (c === HASH && isBlank(buf[p - 1])) {
        while (p < n && buf[p] !== LF) p++;
        break;
      }
      const at = p - i; // column
      if (nodeStart && (c === DASH || c === QMARK || c === COLON) && isBlank(buf[p + 1])) {
        if (!first && c !== COLON) push(at, true);
        first = false;
        p++;
        continue;
      }
      if (nodeStart && (c === AMP || c === STAR || c === BANG)) {
        if (c !== BANG) alias();
        while (p < n && !isBlank(buf[p])) p++;
        continue;
      }
      if (nodeStart && (c === LBRACK || c === LBRACE)) {
        if (cols.length + ++flow > maxDepth) throw depthError(maxDepth, what);
        p = scanFlow(p + 1, c);
        nodeStart = false;
        continue;
      }
      if (nodeStart && (c === PIPE || c === GT)) {
        blockScalarAbove = cols.length ? cols[cols.length - 1] : -1;
        while (p < n && buf[p] !== LF) p++;
        break;
      }
      // A scalar (quoted or plain), maybe a mapping key: `k: v` opens a mapping at its column.
      if (c === DQ || c === SQ) p = skipQuoted(p);
      let key = false;
      for (; p < n && buf[p] !== LF; p++) {
        const d = buf[p];
        if (d === COLON && isBlank(buf[p + 1])) {
          key = true;
          p++;
          break;
        }
        if (d === HASH && isBlank(buf[p - 1])) break;
      }
      if (key) {
        if (!first) push(at, false);
        first = false;
        nodeStart = true;
        continue;
      }
      nodeStart = false;
      first = false;
    }
    i = p + 1;
  }
}

/** Checks a text as JSON or YAML. */
export function prescan(input: Buffer | string, format: 'json' | 'yaml', what?: string, o?: PrescanLimits): void {
  if (format === 'json') prescanJson(input, what, o);
  else prescanYaml(input, what, o);
}
