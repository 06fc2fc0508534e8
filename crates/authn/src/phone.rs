//! Phone numbers: accounts are phone-first, so a number is parsed to E.164 in one place, for
//! every service that takes one (auth's sign-in, user's phone look-up), and compares equal.

use std::fmt;

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parse `input`: it must be international (start with `+`) and valid for its region.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let input = input.trim();
        if !input.starts_with('+') {
            return Err("must be in international E.164 form, starting with + and a country code");
        }
        if input.len() > 32 {
            return Err("is too long for a phone number");
        }
        // libphonenumber would read letters as keypad digits (vanity numbers); an app sends
        // digits, so letters are a mistake or a probe.
        if !input[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || " -().".contains(c))
        {
            return Err("must contain only digits after the +");
        }
        let parsed = phonenumber::parse(None, input).map_err(|_| "is not a phone number")?;
        if !phonenumber::is_valid(&parsed) {
            return Err("is not a valid phone number for its country");
        }
        Ok(Self(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// The E.164 string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's range (everything but its last four digits), for limits that stop SMS
    /// pumping across many numbers of one range.
    pub fn range(&self) -> &str {
        &self.0[..self.0.len().saturating_sub(4).max(1)]
    }

    /// The number with all but the last two digits hidden, for logs.
    pub fn masked(&self) -> String {
        let visible = &self.0[self.0.len().saturating_sub(2)..];
        format!("+…{visible}")
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_normalises() {
        assert_eq!(
            PhoneNumber::parse(" +1 415 555 2671 ").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            PhoneNumber::parse("+447911123456").unwrap().range(),
            "+44791112"
        );
    }

    #[test]
    fn refuses_national_and_invalid_numbers() {
        assert!(PhoneNumber::parse("4155552671").is_err());
        assert!(PhoneNumber::parse("+1").is_err());
        assert!(PhoneNumber::parse("+999123").is_err());
        assert!(PhoneNumber::parse("+1415555267a").is_err());
    }

    #[test]
    fn masks_for_logs() {
        assert_eq!(PhoneNumber::parse("+14155552671").unwrap().masked(), "+…71");
    }
}
