import type { Response } from 'express';
import type { z } from 'zod';

/**
 * RFC 9457 problem details. Handlers throw `HttpProblem`; the error middleware turns it
 * (and anything else) into application/problem+json, so every error has one shape.
 */
export interface FieldError {
  /** Where the field is: body, query or params. */
  in: 'body' | 'query' | 'params' | 'header';
  /** Dotted path inside that location, e.g. `person.idNumber` or `results.3.sampleId`. */
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const SLUGS: Record<number, string> = {
  400: 'validation',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  409: 'conflict',
  410: 'gone',
  413: 'too-large',
  415: 'unsupported-media-type',
  422: 'rejected',
  429: 'rate-limited',
  500: 'internal',
  503: 'unavailable',
  504: 'timeout',
};

export const problemType = (status: number, slug?: string): string =>
  `https://shaodian.invalid/problems/${slug ?? SLUGS[status] ?? 'error'}`;

export class HttpProblem extends Error {
  readonly problem: Problem;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    detail?: string,
    extra: Partial<Problem> & { slug?: string } = {},
    headers: Record<string, string> = {},
  ) {
    super(detail ?? TITLES[status] ?? 'Error');
    const { slug, ...rest } = extra;
    this.problem = {
      type: problemType(status, slug),
      title: TITLES[status] ?? 'Error',
      status,
      ...(detail ? { detail } : {}),
      ...rest,
    };
    this.headers = headers;
    this.name = 'HttpProblem';
  }

  get status(): number {
    return this.problem.status;
  }
}

export function sendProblem(res: Response, p: Problem, headers: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.status(p.status).type('application/problem+json').send(JSON.stringify(p));
}

export function zodFieldErrors(where: FieldError['in'], error: z.ZodError): FieldError[] {
  return error.issues.flatMap((i) => {
    const base = i.path.map(String);
    // One entry per unknown field, so the caller sees which field to remove.
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((k) => ({ in: where, path: [...base, k].join('.'), message: 'unknown field' }));
    }
    return [{ in: where, path: base.join('.'), message: i.message }];
  });
}

export function validationProblem(errors: FieldError[]): HttpProblem {
  const fields = [...new Set(errors.map((e) => (e.path ? `${e.in}.${e.path}` : e.in)))];
  return new HttpProblem(400, `Invalid request: ${fields.join(', ')}`, { errors });
}
