//! AuthService's rate limits (DESIGN §5): OTP requests and checks, and logins, per phone, per
//! number range and per client IP. Checked with [`echo_cache::Limits`], which fails open when
//! the cache is down.

use std::time::Duration;

pub use echo_cache::{Limits, Rule};

const HOUR: Duration = Duration::from_secs(3600);
const QUARTER_HOUR: Duration = Duration::from_secs(900);

/// OTP sends per phone: 5 an hour (an SMS costs money and annoys the owner).
pub const OTP_SEND_PER_PHONE: Rule = Rule::per("otp.send.phone", 5, HOUR);
/// OTP sends per number range: 100 an hour (stops SMS pumping across a range).
pub const OTP_SEND_PER_RANGE: Rule = Rule::per("otp.send.range", 100, HOUR);
/// OTP sends per client IP: 20 an hour.
pub const OTP_SEND_PER_IP: Rule = Rule::per("otp.send.ip", 20, HOUR);
/// Code checks per phone, across codes: 15 an hour (a code allows 5 itself).
pub const OTP_CHECK_PER_PHONE: Rule = Rule::per("otp.check.phone", 15, HOUR);
/// Code checks per number range: 300 an hour.
pub const OTP_CHECK_PER_RANGE: Rule = Rule::per("otp.check.range", 300, HOUR);
/// Password logins per phone: 10 every 15 minutes.
pub const LOGIN_PER_PHONE: Rule = Rule::per("login.phone", 10, QUARTER_HOUR);
/// Password logins per client IP: 60 every 15 minutes.
pub const LOGIN_PER_IP: Rule = Rule::per("login.ip", 60, QUARTER_HOUR);
