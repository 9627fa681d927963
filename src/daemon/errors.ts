/** An error the API reports with an HTTP status, as Docker's does (400 bad input, 404, 409, 403; 413 too large a body). */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 413 | 500,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (m: string): ApiError => new ApiError(400, m);
export const notFound = (m: string): ApiError => new ApiError(404, m);
export const conflict = (m: string): ApiError => new ApiError(409, m);
export const forbidden = (m: string): ApiError => new ApiError(403, m);
