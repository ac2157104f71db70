// Session tokens for bench devices created with SQL: signed with the servers' JWT_SECRET exactly as platform/tokens.ts issues them.
import { SignJWT } from 'jose';

/** A token for `deviceId` of `userId`, valid for two hours. */
export function benchToken(secret: string, userId: string, deviceId: string): Promise<string> {
  return new SignJWT({ did: deviceId })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuer('parley')
    .setAudience('parley-client')
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(secret));
}
