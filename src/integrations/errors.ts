import { ApplicationFailure } from '@temporalio/common';

import { ErrorCode } from '../activities/types';

/**
 * Failures carry an ErrorCode as their type so that workflows and tests can tell them apart;
 * the retryable flag decides whether Temporal tries again.
 */
export const unavailable = (system: string, detail: string): ApplicationFailure =>
  ApplicationFailure.retryable(`${system} unavailable: ${detail}`, ErrorCode.IntegrationUnavailable);

export const rejected = (system: string, detail: string, code: ErrorCode = ErrorCode.IntegrationRejected) =>
  ApplicationFailure.nonRetryable(`${system} rejected the request: ${detail}`, code);

export const roomConflict = (roomId: string, detail: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(`room ${roomId}: ${detail}`, ErrorCode.RoomStateConflict);

export const unknownRoom = (roomId: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(`unknown room ${roomId}`, ErrorCode.UnknownRoom);

export const unknownHotel = (hotelId: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(`unknown hotel ${hotelId}`, ErrorCode.UnknownHotel);
