//! RFC 4884 extended ICMP errors through the translator (RFC 7915 sections 4.2 and 5.2).
//!
//! An ICMP error may carry, after the packet it quotes, an extension structure; its length
//! attribute says where the quote ends: in 32-bit words in ICMPv4 (the second byte of the
//! header's second word), in 64-bit words in ICMPv6 (the first byte). Translation changes the
//! quote's length (its IP header grows or shrinks by 20 bytes, options and extension headers
//! go), so the quote is cut or padded with zeros to the other family's unit, the extension
//! moved behind it unchanged (RFC 7915: an opaque bit string), and the attribute rewritten.
//!
//! Sizes follow RFC 4884 section 5 and the limits of RFC 1812 section 4.3.2.3 (an ICMPv4 error
//! is at most 576 bytes) and RFC 4443 section 2.4(c) (an ICMPv6 error at most 1280): the quote
//! keeps at least 128 bytes with its padding (section 5.1), the extension comes whole or not at
//! all, and the rest of the quote gives way to it. This is Jool's reading too (its graybox
//! README, `ic` and `id`), including its salvage of quotes shorter than 128 bytes that some
//! routers send (Jool issue 396): they are padded to 128.
//!
//! All offsets here are in bytes from the end of the 8-byte ICMP header (the "body").

/// The least the quote takes with its padding when an extension follows (RFC 4884 section 5.1).
pub const MIN_QUOTE: usize = 128;

/// The longest body an ICMPv4 error takes: 576 - 20 (IPv4 header) - 8 (ICMP header).
pub const MAX_BODY4: usize = 548;
/// The longest body an ICMPv6 error takes: 1280 - 40 - 8.
pub const MAX_BODY6: usize = 1232;

/// How the body of a translated error is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the (translated) quote kept, from the start of the body.
    pub keep: usize,
    /// Zero bytes after them.
    pub pad: usize,
    /// Bytes of extension after the padding (0: none, or dropped).
    pub ext: usize,
    /// Where the extension sits in the translated body before it is moved (meaningful when
    /// `ext` is not 0); the bytes from `keep` up to there leave the message.
    pub ext_from: usize,
    /// The length attribute of the translated error, in its own unit.
    pub length: u8,
    /// Where the bytes that leave end: `ext_from` with an extension, else the translated
    /// body's end.
    pub gap_end: usize,
}

impl Layout {
    /// The translated body's length.
    pub const fn body(&self) -> usize {
        self.keep + self.pad + self.ext
    }
}

/// Which way a message goes, for its units and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Towards {
    /// Into ICMPv4: 32-bit words, at most [`MAX_BODY4`].
    V4,
    /// Into ICMPv6: 64-bit words, at most [`MAX_BODY6`].
    V6,
}

impl Towards {
    const fn unit(self) -> usize {
        match self {
            Towards::V4 => 4,
            Towards::V6 => 8,
        }
    }
    const fn max_body(self) -> usize {
        match self {
            Towards::V4 => MAX_BODY4,
            Towards::V6 => MAX_BODY6,
        }
    }
}

/// The layout of a translated error body.
///
/// - `quote_in`: the incoming length attribute in bytes (0: no extension claimed);
/// - `body_in`: the incoming body's length (the message less its 8-byte header);
/// - `min_quote`: the incoming quote's headers (IP header, options, extension headers), the
///   least a length attribute must cover;
/// - `shrink`: how many bytes shorter the translated quote's headers are than the incoming
///   ones (negative: longer);
/// - `drop_ext`: the type loses any extension (an ICMPv4 Fragmentation Needed, Protocol
///   Unreachable or Parameter Problem becomes an ICMPv6 type without one).
///
/// `None`: the attribute claims more than the body holds, or less than the quote's headers
/// (RFC 4884 section 5.4: not a valid extended message); it is dropped.
#[inline(always)]
pub fn layout(
    to: Towards,
    quote_in: usize,
    body_in: usize,
    min_quote: usize,
    shrink: isize,
    drop_ext: bool,
) -> Option<Layout> {
    let body_out = body_in.checked_add_signed(-shrink)?;
    let max = to.max_body();
    let cut = |n: usize| n.min(max);
    // No extension, or a quote that fills the body (no room for one): as RFC 7915 says for
    // any error, the quote is translated and cut to the maximum size; no attribute.
    if quote_in == 0 || quote_in == body_in {
        return Some(Layout {
            keep: cut(body_out),
            pad: 0,
            ext: 0,
            ext_from: body_out,
            length: 0,
            gap_end: body_out,
        });
    }
    if quote_in > body_in || quote_in < min_quote {
        return None;
    }
    let ext_in = body_in - quote_in;
    // The quote with its headers translated; `min_quote` keeps it whole in `usize`.
    let ext_from = (quote_in as isize - shrink) as usize;
    if drop_ext || ext_in > max - MIN_QUOTE {
        // The extension does not fit beside the least quote: it goes, whole (RFC 4884
        // section 5.3 does not allow a partial one).
        return Some(Layout {
            keep: cut(ext_from),
            pad: 0,
            ext: 0,
            ext_from,
            length: 0,
            gap_end: body_out,
        });
    }
    // The quote gives way to the extension, and ends on the other family's unit.
    let keep = (cut(body_out) - ext_in) & !(to.unit() - 1);
    let pad = MIN_QUOTE.saturating_sub(keep);
    Some(Layout {
        keep,
        pad,
        ext: ext_in,
        ext_from,
        length: ((keep + pad) / to.unit()) as u8,
        gap_end: ext_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The figures are those of Jool's graybox README (test-suite/siit/7915, `ib`, `ic`, `id`).

    #[test]
    fn no_extension_is_cut_to_the_maximum() {
        // An ICMPv6 error quoting 1232 bytes: 20 + 8 + 548 = 576 bytes of ICMPv4.
        let l = layout(Towards::V4, 0, 1232, 40, 20, false).unwrap();
        assert_eq!(
            (l.keep, l.pad, l.ext, l.length, l.body()),
            (548, 0, 0, 0, 548)
        );
        assert_eq!(l.gap_end, 1212);
        // A quote filling the body: no extension, and no attribute.
        let l = layout(Towards::V6, 96, 96, 20, -20, false).unwrap();
        assert_eq!((l.keep, l.ext, l.length), (116, 0, 0));
    }

    #[test]
    fn ib1_padding_grows_to_128_bytes_in_icmpv4() {
        // 122 bytes of quote and 6 of padding (length 16 x 8), 20 of extension.
        let l = layout(Towards::V4, 128, 148, 40, 20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (108, 20, 20, 32));
        assert_eq!((l.ext_from, l.gap_end, l.body()), (108, 108, 148));
    }

    #[test]
    fn ib2_quote_is_cut_to_64_bit_words_in_icmpv6() {
        // 126 bytes of quote and 2 of padding (length 32 x 4), 20 of extension.
        let l = layout(Towards::V6, 128, 148, 20, -20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (144, 0, 20, 18));
        assert_eq!((l.ext_from, l.body()), (148, 164));
    }

    #[test]
    fn ic4_ic5_the_largest_extension_that_fits_576_bytes() {
        // 128 bytes of quote (48 + 80), 420 of extension: 20 + 8 + 108 + 20 + 420 = 576.
        let l = layout(Towards::V4, 128, 548, 40, 20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (108, 20, 420, 32));
        assert_eq!(20 + 8 + l.body(), 576);
        // One byte more and the extension goes, with the attribute.
        let l = layout(Towards::V4, 128, 549, 40, 20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (108, 0, 0, 0));
        assert_eq!(l.gap_end, 529);
    }

    #[test]
    fn ic2_quote_gives_way_to_the_extension() {
        // 48 + 488 bytes of quote (length 67 x 8), 40 of extension.
        let l = layout(Towards::V4, 536, 576, 40, 20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (508, 0, 40, 127));
        assert_eq!((l.ext_from, l.gap_end), (516, 516));
        assert_eq!(20 + 8 + l.body(), 576);
    }

    #[test]
    fn ic7_a_short_quote_is_padded_to_128() {
        let l = layout(Towards::V4, 48, 88, 40, 20, false).unwrap();
        assert_eq!((l.keep, l.pad, l.ext, l.length), (28, 100, 40, 32));
    }

    #[test]
    fn dropped_by_type_or_claim() {
        // ICMPv4 Fragmentation Needed with an extension: it goes.
        let l = layout(Towards::V6, 128, 168, 20, -20, true).unwrap();
        assert_eq!((l.keep, l.ext, l.length, l.gap_end), (148, 0, 0, 188));
        // A claim longer than the body, or shorter than the quoted header.
        assert_eq!(layout(Towards::V6, 200, 168, 20, -20, false), None);
        assert_eq!(layout(Towards::V4, 32, 168, 40, 20, false), None);
    }
}
