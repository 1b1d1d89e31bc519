// Amounts and currencies (SPEC.md 15.1): integers of minor units, never floats.
import { ErrorCode, ProtocolError } from "./codec.js";

const TABLE: Record<number, string> = {
  0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
  2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG",
  3: "BHD IQD JOD KWD LYD OMR TND",
  4: "CLF UYW",
};
export const CURRENCIES: Record<string, number> = {};
for (const [e, codes] of Object.entries(TABLE)) for (const c of codes.split(" ")) CURRENCIES[c] = Number(e);
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

export function exponent(currency: string): number {
  const e = Object.hasOwn(CURRENCIES, currency) ? CURRENCIES[currency] : undefined;
  if (e === undefined) throw new ProtocolError(`unknown currency ${currency.slice(0, 8)}`, ErrorCode.UNKNOWN_CURRENCY);
  return e;
}

export function parseAmount(text: string, currency: string): number {
  const digits = exponent(currency);
  const m = text.length <= 40 ? /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(text) : null;
  if (!m) throw new ProtocolError(`not an amount: ${text.slice(0, 40)} (write it like 12.50)`, ErrorCode.INVALID_AMOUNT);
  const fraction = m[2] ?? "";
  if (fraction.length > digits) throw new ProtocolError(`${currency} has ${digits} decimals`, ErrorCode.INVALID_AMOUNT);
  const minor = BigInt(m[1]!) * 10n ** BigInt(digits) + (digits ? BigInt(fraction.padEnd(digits, "0")) : 0n);
  if (minor <= 0n) throw new ProtocolError("an amount must be more than zero", ErrorCode.INVALID_AMOUNT);
  if (minor > BigInt(MAX_AMOUNT)) throw new ProtocolError("amount too large", ErrorCode.INVALID_AMOUNT);
  return Number(minor);
}

export function formatAmount(minor: number, currency: string): string {
  const digits = exponent(currency);
  const sign = minor < 0 ? "-" : "";
  const a = BigInt(Math.abs(minor));
  const scale = 10n ** BigInt(digits);
  if (!digits) return `${sign}${a}`;
  return `${sign}${a / scale}.${String(a % scale).padStart(digits, "0")}`;
}

export const formatMoney = (minor: number, currency: string) => `${formatAmount(minor, currency)} ${currency}`;
