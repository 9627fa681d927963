/**
 * CNI's well-known error codes (SPEC.md, "Well-known Error Codes"), and tsnet-cni's own from 100
 * on, where the spec leaves them to the plugin.
 */
export const Code = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** The change cannot be made as asked: the daemon refused it, or it conflicts with what is there. */
  refused: 100,
  /** CHECK: the container's networking is no longer as ADD left it. */
  notAsAdded: 101,
} as const;

export type CodeValue = (typeof Code)[keyof typeof Code];

/** An error that becomes the CNI error result: `{cniVersion, code, msg, details}` on stdout. */
export class CniError extends Error {
  constructor(
    readonly code: CodeValue,
    message: string,
    readonly details?: string,
  ) {
    super(message);
  }
}
