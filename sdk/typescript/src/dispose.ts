// `await using` (TypeScript 5.2+) calls Symbol.asyncDispose, which Node defines from 18.18 and
// 20.4 on; on older 18.x it is missing and the SDK's classes would get a method named "undefined".
// Defining it here, before any class of the SDK is created, makes `await using` work everywhere
// the SDK runs (Node >= 18). Imported first by every module that declares a disposable.
const S = Symbol as unknown as { asyncDispose?: symbol; dispose?: symbol };
S.asyncDispose ??= Symbol.for("Symbol.asyncDispose");
S.dispose ??= Symbol.for("Symbol.dispose");
export {};
