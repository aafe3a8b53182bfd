//! Unit tests of parsing, validation and rendering.

use nat64_common::addr::WELL_KNOWN_PREFIX;

use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn the_rendered_configuration_parses_back_to_itself() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/nat64d.toml"
    ))
    .unwrap();
    let stateful = "\n[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.64/32\"]\ntcp_ports = \"3000-3999\"\n\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"203.0.113.9:80\"\n";
    for t in [String::new(), text, stateful.to_string()] {
        let c = Config::parse(&t, "x").unwrap_or_else(|e| panic!("{e}\n{t}"));
        let shown = c.to_toml();
        let back = Config::parse(&shown, "shown").unwrap_or_else(|e| panic!("{e}\n{shown}"));
        assert_eq!(back, c, "{shown}");
    }
    let c = Config::parse("pool6 = \"off\"\ntranslator_link = \"off\"\n[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"", "x").unwrap();
    let shown = c.to_toml();
    assert!(shown.contains("pool6 = \"off\""), "{shown}");
    assert!(shown.contains("on_stop = \"detach\""), "{shown}");
    assert_eq!(Config::parse(&shown, "shown").unwrap(), c);
}

#[test]
fn tos_and_traffic_class_each_direction_on_its_own() {
    use nat64_common::maps::CONFIG_F2_TC_ZERO;
    let d = |t: &str| Config::parse(t, "x").unwrap().dataplane();
    // Default: copy both ways; copy_tos = false: zero both ways.
    let c = d("");
    assert_eq!(
        (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
        (CONFIG_F_COPY_TOS, 0)
    );
    let c = d("copy_tos = false");
    assert_eq!(
        (
            c.flags & CONFIG_F_COPY_TOS,
            c.tos,
            c.flags2 & CONFIG_F2_TC_ZERO
        ),
        (0, 0, CONFIG_F2_TC_ZERO)
    );
    // RFC 7915 section 5.1: a TOS value always set; section 4.1: traffic class zero.
    let c = d("tos = 184\ntraffic_class = \"copy\"");
    assert_eq!(
        (
            c.flags & CONFIG_F_COPY_TOS,
            c.tos,
            c.flags2 & CONFIG_F2_TC_ZERO
        ),
        (0, 184, 0)
    );
    let c = d("traffic_class = \"zero\"");
    assert_eq!(
        (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
        (CONFIG_F_COPY_TOS, CONFIG_F2_TC_ZERO)
    );
    let c = d("copy_tos = false\ntos = \"copy\"");
    assert_eq!(
        (c.flags & CONFIG_F_COPY_TOS, c.flags2 & CONFIG_F2_TC_ZERO),
        (CONFIG_F_COPY_TOS, CONFIG_F2_TC_ZERO)
    );
    // Refused, with the reason.
    let e = err("tos = \"keep\"");
    assert!(e.contains("tos") && e.contains("neither \"copy\""), "{e}");
    let e = err("tos = 300");
    assert!(e.contains("tos"), "{e}");
    let e = err("traffic_class = \"one\"");
    assert!(e.contains("traffic_class"), "{e}");
    // Rendered and read back.
    let c = Config::parse("tos = 32\ntraffic_class = \"zero\"", "x").unwrap();
    assert_eq!(Config::parse(&c.to_toml(), "shown").unwrap(), c);
}

#[test]
fn pool6_ipv4_under_the_well_known_prefix_must_be_global() {
    // RFC 6052 section 3.1.
    let e = err("pool6_ipv4 = [\"192.0.2.0/24\", \"10.1.0.0/16\"]");
    assert!(
        e.contains("pool6_ipv4[1]") && e.contains("10.0.0.0/8") && e.contains("RFC 6052"),
        "{e}"
    );
    let e = err("pool6_ipv4 = [\"172.0.0.0/8\"]");
    assert!(e.contains("172.16.0.0/12"), "{e}");
    // Documentation ranges are left to labs; a network-specific prefix carries anything.
    Config::parse("pool6_ipv4 = [\"192.0.2.0/24\"]", "x").unwrap();
    Config::parse(
        "pool6 = \"2001:db8:64::/96\"\npool6_ipv4 = [\"10.1.0.0/16\"]",
        "x",
    )
    .unwrap();
}

#[test]
fn empty_config_means_well_known_prefix() {
    let c = Config::parse("", "x").unwrap();
    assert_eq!(c.pool6.0.unwrap().to_string(), "64:ff9b::/96");
    assert!(c.copy_tos);
    let d = c.dataplane();
    assert_eq!(d.pool6, WELL_KNOWN_PREFIX);
    assert_eq!(d.pool6_len, 96);
    assert_eq!(d.flags, CONFIG_F_COPY_TOS | CONFIG_F_LINK);
    assert_ne!(d.flags2 & nat64_common::maps::CONFIG_F2_POOL6_WKP, 0);
    assert_eq!(c.translator_link.0.as_deref(), Some("nat64"));
    assert_eq!(c.translator_link.peer().as_deref(), Some("nat64-dp"));
    assert_eq!(c.link_mtu(), 1500);
}

#[test]
fn stateful_section() {
    let c = Config::parse(
        "[stateful]\npool4 = \"203.0.113.8/30\"\nports = \"2000-2999\"",
        "x",
    )
    .unwrap();
    let d = c.dataplane();
    assert_eq!(d.flags & CONFIG_F_STATEFUL, CONFIG_F_STATEFUL);
    assert_eq!((d.pool4_addresses, d.pool4_prefixes), (4, 1));
    // The span is the prefix: with one prefix the dataplane needs no pool4 lookup.
    assert_eq!(d.pool4_span, [0xcb00_7108, 0xcb00_710b]);
    assert_eq!(
        (d.tcp_ports, d.udp_ports, d.icmp_ids),
        ([2000, 2999], [2000, 2999], [2000, 2999])
    );
    let c = Config::parse(
        "[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.64/32\"]\ntcp_ports = \"3000-3999\"",
        "x",
    )
    .unwrap();
    let d = c.dataplane();
    assert_eq!((d.pool4_addresses, d.pool4_prefixes), (5, 2));
    // Two prefixes: the span covers both and what lies between (looked up in the trie).
    assert_eq!(d.pool4_span, [0xcb00_7108, 0xcb00_7140]);
    assert_eq!((d.tcp_ports, d.udp_ports), ([3000, 3999], [1024, 65535]));
    let e = err("[stateful]\npool4 = [\"203.0.113.8/30\", \"203.0.113.9/32\"]");
    assert!(
        e.starts_with("stateful.pool4[1]: ") && e.contains("overlaps stateful.pool4[0]"),
        "{e}"
    );
    let e = err("[stateful]\npool4 = [\"203.0.113.8/30\", \"nonsense\"]");
    assert!(e.contains("\"nonsense\" is not an IPv4 prefix"), "{e}");
    let st = c.stateful.unwrap();
    assert_eq!(st.udp_timeout_secs, 300);
    assert_eq!(st.tcp_established_timeout_secs, 7440);
    assert_eq!(
        Config::parse("", "x").unwrap().dataplane().flags & CONFIG_F_STATEFUL,
        0
    );
    let e = err("[stateful]\npool4 = \"203.0.113.9/30\"");
    assert!(
        e.starts_with("stateful.pool4[0]: ") && e.contains("did you mean"),
        "{e}"
    );
    let e = err("[stateful]\npool4 = \"10.0.0.0/8\"");
    assert!(e.contains("larger than a /16"), "{e}");
    let e = err(
        "[stateful]\npool4 = \"198.51.100.8/30\"\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"",
    );
    assert!(e.contains("overlaps eam[0].ipv4"), "{e}");
    let e = err("[stateful]\npool4 = \"203.0.113.8/30\"\nports = \"3000-2000\"");
    assert!(e.contains("ports") || e.contains("range"), "{e}");
    let e = err("[stateful]\npool4 = \"203.0.113.8/30\"\nudp_timeout_secs = 10");
    assert!(
        e.starts_with("stateful.udp_timeout_secs: 10 s is below"),
        "{e}"
    );
    let c = Config::parse(
        "[stateful]\npool4 = \"203.0.113.8/30\"\nudp_timeout_secs = 10\nrfc_minimum_timeouts = false",
        "x",
    )
    .unwrap();
    assert_eq!(c.stateful.unwrap().udp_timeout_secs, 10);
    let c = Config::parse(
        "[stateful]\npool4 = \"203.0.113.8/30\"\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"203.0.113.9:8080\"",
        "x",
    )
    .unwrap();
    assert_eq!(c.stateful.unwrap().static_bindings[0].ipv4.port(), 8080);
    let e = err(
        "[stateful]\npool4 = \"203.0.113.8/30\"\n[[stateful.static]]\nprotocol = \"tcp\"\nipv6 = \"[2001:db8::5]:80\"\nipv4 = \"192.0.2.9:8080\"",
    );
    assert!(e.starts_with("stateful.static[0].ipv4: "), "{e}");
    let e = err("pool6 = \"off\"\n[stateful]\npool4 = \"203.0.113.8/30\"");
    assert!(e.starts_with("stateful: "), "{e}");
}

#[test]
fn reload_changes_what_the_maps_hold_and_refuses_the_rest() {
    let base = "[[interfaces]]\nname = \"eth0\"\n[stateful]\npool4 = \"203.0.113.8/30\"\n";
    let a = Config::parse(base, "a").unwrap();
    let b = Config::parse(
        &format!("pool6 = \"2001:db8:64::/96\"\ncopy_tos = false\n{base}udp_timeout_secs = 600\n[[eam]]\nipv6 = \"2001:db8:6::100/120\"\nipv4 = \"198.51.100.0/24\"\n"),
        "b",
    )
    .unwrap();
    a.check_reload(&b).unwrap();
    let c = Config::parse(&base.replace("eth0", "eth1"), "c").unwrap();
    let e = a.check_reload(&c).unwrap_err().to_string();
    assert!(
        e.starts_with("interfaces: changes only with a restart"),
        "{e}"
    );
    let d = Config::parse(&base.replace("/30", "/29"), "d").unwrap();
    let e = a.check_reload(&d).unwrap_err().to_string();
    assert!(e.starts_with("stateful.pool4: "), "{e}");
    let (v6, v4) = b.link_routes();
    assert_eq!(v6.len(), 1);
    assert_eq!(
        v4.len(),
        4,
        "the EAM prefix, pool4 and the shared address's two aliases"
    );
}

#[test]
fn translator_link_name_off_and_limits() {
    let c = Config::parse("translator_link = \"off\"", "x").unwrap();
    assert_eq!(c.translator_link.0, None);
    assert_eq!(c.dataplane().flags & CONFIG_F_LINK, 0);
    let c = Config::parse("translator_link = \"xl\"\nipv6_mtu = 1400", "x").unwrap();
    assert_eq!(c.translator_link.peer().as_deref(), Some("xl-dp"));
    assert_eq!(c.link_mtu(), 1500);
    assert_eq!(c.ipv4_route_mtu(), 1372);
    // Within the narrowest IPv6 route too (1280: a tunnel); a floor above ipv6_mtu, or none
    // known (0), or one under IPv6's minimum, changes nothing.
    assert_eq!(c.ipv4_route_mtu_under(1280), 1252);
    assert_eq!(c.ipv4_route_mtu_under(1500), 1372);
    assert_eq!(c.ipv4_route_mtu_under(0), 1372);
    assert_eq!(c.ipv4_route_mtu_under(1000), 1372);
    let c = Config::parse("ipv6_mtu = 9000", "x").unwrap();
    assert_eq!((c.link_mtu(), c.ipv4_route_mtu()), (1500, 1472));
    let e = err("translator_link = \"thirteen-char\"");
    assert!(e.contains("not a usable link name"), "{e}");
    let e = err("translator_link = \"a b\"");
    assert!(e.contains("not a usable link name"), "{e}");
    let e = err("translator_link = \"xl\"\n[[interfaces]]\nname = \"xl-dp\"");
    assert!(e.starts_with("translator_link: "), "{e}");
    let e = err("translator_link = \"off\"\n[[interfaces]]\nname = \"eth0\"\nhook = \"tc\"");
    assert!(e.starts_with("interfaces[0].hook: "), "{e}");
    assert!(e.contains("interfaces[0]"), "{e}");
}

#[test]
fn full_config_parses() {
    let c = Config::parse(
        r#"
        pool6 = "2001:db8:100::/40"
        copy_tos = false
        log_format = "json"
        stats_interval_secs = 10
        pool6791 = "192.0.2.1"
        translator_link = "xl"
        [[interfaces]]
        name = "eth0"
        [[interfaces]]
        name = "eth1"
        xdp_mode = "generic"
        [[interfaces]]
        name = "eth2"
        hook = "tc"
        [[eam]]
        ipv6 = "2001:db8:6::100/120"
        ipv4 = "198.51.100.0/24"
        "#,
        "x",
    )
    .unwrap();
    assert_eq!(c.interfaces[0].xdp_mode, XdpMode::Native);
    assert_eq!(c.interfaces[1].xdp_mode, XdpMode::Generic);
    assert_eq!(c.interfaces[1].hook, Hook::Auto);
    assert_eq!(c.interfaces[2].hook, Hook::Tc);
    assert_eq!(c.dataplane().pool6_len, 40);
    assert_eq!(c.dataplane().flags & CONFIG_F_COPY_TOS, 0);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.dataplane().pool6791, [192, 0, 2, 1]);
    // pool6791 set, copy_tos off, an EAM entry (hairpinning is looked for), and the
    // translator link.
    assert_eq!(
        c.dataplane().flags,
        CONFIG_F_POOL6791 | CONFIG_F_EAM | CONFIG_F_LINK
    );
}

#[test]
fn the_eam_spans_cover_the_entries_and_pool6_ipv4_and_are_empty_without_them() {
    use nat64_common::addr::{EMPTY_SPAN4, EMPTY_SPAN6, in_span4, in_span6};
    let c = Config::parse(
        r#"
        pool6 = "64:ff9b::/96"
        pool6_ipv4 = ["192.0.2.0/28"]
        [[eam]]
        ipv6 = "2001:db8:6::100/120"
        ipv4 = "198.51.100.0/24"
        [[eam]]
        ipv6 = "2001:db8:9::/64"
        ipv4 = "203.0.113.0/24"
        "#,
        "x",
    )
    .unwrap()
    .dataplane();
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    assert!(in_span6(&c.eam6_span, &v6("2001:db8:6::1ff")));
    assert!(in_span6(&c.eam6_span, &v6("2001:db8:9::ffff")));
    // pool6 is not in the EAM6 trie: its addresses skip the lookup.
    assert!(!in_span6(&c.eam6_span, &v6("64:ff9b::c000:201")));
    assert!(in_span4(&c.eam4_span, [192, 0, 2, 15]));
    assert!(in_span4(&c.eam4_span, [198, 51, 100, 7]));
    assert!(in_span4(&c.eam4_span, [203, 0, 113, 255]));
    assert!(!in_span4(&c.eam4_span, [192, 0, 1, 255]));
    assert!(!in_span4(&c.eam4_span, [203, 0, 114, 0]));

    let none = Config::parse("pool6 = \"64:ff9b::/96\"", "x")
        .unwrap()
        .dataplane();
    assert_eq!((none.eam6_span, none.eam4_span), (EMPTY_SPAN6, EMPTY_SPAN4));
}

#[test]
fn ipv6_mtu_default_and_limits() {
    assert_eq!(Config::parse("", "x").unwrap().dataplane().ipv6_mtu, 1280);
    assert_eq!(
        Config::parse("ipv6_mtu = 0", "x")
            .unwrap()
            .dataplane()
            .ipv6_mtu,
        0
    );
    assert_eq!(
        Config::parse("ipv6_mtu = 9000", "x")
            .unwrap()
            .dataplane()
            .ipv6_mtu,
        9000
    );
    let e = err("ipv6_mtu = 1000");
    assert!(e.starts_with("ipv6_mtu: 1000 is below 1280"), "{e}");
}

#[test]
fn pool6_off() {
    let c = Config::parse("pool6 = \"off\"", "x").unwrap();
    assert_eq!(c.dataplane().pool6_len, 0);
}

#[test]
fn rejects_bad_prefix_length_with_field_and_reason() {
    let e = err("pool6 = \"64:ff9b::/80\"");
    assert!(e.starts_with("pool6: prefix length /80"), "{e}");
    assert!(e.contains("RFC 6052"), "{e}");
}

#[test]
fn rejects_host_bits_and_u_octet() {
    assert!(err("pool6 = \"64:ff9b::1/96\"").contains("did you mean 64:ff9b::/96"));
    let e = err("pool6 = \"2001:db8:0:0:ff00::/96\"");
    assert!(e.contains("u-octet"), "{e}");
}

#[test]
fn rejects_unknown_keys_and_bad_types() {
    let e = err("pool7 = \"64:ff9b::/96\"");
    assert!(e.contains("unknown field `pool7`"), "{e}");
    let e = err("[[interfaces]]\nname = \"eth0\"\nxdp_mode = \"turbo\"");
    assert!(e.contains("xdp_mode") || e.contains("turbo"), "{e}");
    let e = err("pool6 = \"not-a-prefix\"");
    assert!(e.contains("not an IPv6 prefix"), "{e}");
}

#[test]
fn rejects_mismatched_and_overlapping_eams() {
    let e = err("[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/23\"");
    assert!(e.starts_with("eam[0]: "), "{e}");
    assert!(e.contains("suffix bits"), "{e}");
    let e = err(
        "[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"\n\
         [[eam]]\nipv6 = \"2001:db8::80/121\"\nipv4 = \"198.51.100.0/25\"",
    );
    assert!(e.starts_with("eam[1].ipv6: "), "{e}");
    let e = err(
        "[[eam]]\nipv6 = \"2001:db8::/120\"\nipv4 = \"192.0.2.0/24\"\n\
         [[eam]]\nipv6 = \"2001:db8:1::/120\"\nipv4 = \"192.0.2.0/24\"",
    );
    assert!(e.starts_with("eam[1].ipv4: "), "{e}");
    // Inside pool6: the EAM table comes first (RFC 7757 section 3.3).
    Config::parse(
        "[[eam]]\nipv6 = \"64:ff9b::c000:200/120\"\nipv4 = \"192.0.2.0/24\"",
        "x",
    )
    .unwrap();
    // A longer IPv6 suffix (section 3.2), within the last 64 bits.
    Config::parse(
        "pool6 = \"2001:db8:100::/40\"\n[[eam]]\nipv6 = \"2001:db8:1c6:3364::/72\"\nipv4 = \"198.51.100.0/24\"",
        "x",
    )
    .unwrap();
    let e = err("[[eam]]\nipv6 = \"2001:db8::/56\"\nipv4 = \"192.0.2.0/24\"");
    assert!(e.contains("last 64 bits"), "{e}");
}

#[test]
fn rejects_duplicate_and_bad_interface_names() {
    let e = err("[[interfaces]]\nname = \"eth0\"\n[[interfaces]]\nname = \"eth0\"");
    assert!(e.starts_with("interfaces[1].name"), "{e}");
    let e = err("[[interfaces]]\nname = \"a-very-long-interface-name\"");
    assert!(e.starts_with("interfaces[0].name"), "{e}");
}

#[test]
fn interface_flag_syntax() {
    assert_eq!(
        "xc:generic".parse::<Interface>().unwrap(),
        Interface {
            name: "xc".into(),
            hook: Hook::Xdp,
            xdp_mode: XdpMode::Generic,
            partial_checksums: PartialChecksums::Auto
        }
    );
    assert_eq!("xc".parse::<Interface>().unwrap().xdp_mode, XdpMode::Native);
    assert_eq!("xc:tc".parse::<Interface>().unwrap().hook, Hook::Tc);
    assert_eq!("xc:xdp".parse::<Interface>().unwrap().hook, Hook::Xdp);
    assert_eq!("xc".parse::<Interface>().unwrap().hook, Hook::Auto);
    assert!("xc:fast".parse::<Interface>().is_err());
}

mod properties {
    use proptest::prelude::*;

    use super::super::Config;

    /// Keys with values, valid and not, that a generated file picks from.
    const CHOICES: &[(&str, &[&str])] = &[
        (
            "pool6",
            &[
                "\"64:ff9b::/96\"",
                "\"64:ff9b::/95\"",
                "\"2001:db8::/32\"",
                "\"off\"",
                "\"x\"",
                "7",
            ],
        ),
        (
            "ipv6_mtu",
            &["1500", "1280", "1279", "0", "70000", "\"1500\""],
        ),
        ("pool6791", &["\"192.0.2.1\"", "\"127.0.0.1\"", "\"::1\""]),
        (
            "translator_link",
            &[
                "\"nat64\"",
                "\"off\"",
                "\"a-very-long-link-name\"",
                "\"a/b\"",
            ],
        ),
        ("on_stop", &["\"keep\"", "\"detach\"", "\"later\""]),
        ("state_dir", &["\"off\"", "\"/sys/fs/bpf/x\""]),
        ("copy_tos", &["true", "1"]),
        ("unknown_key", &["1"]),
    ];

    fn file() -> impl Strategy<Value = (String, Vec<&'static str>)> {
        proptest::collection::vec((0..CHOICES.len(), 0..6usize), 0..6).prop_map(|picks| {
            let mut text = String::new();
            let mut keys = Vec::new();
            for (k, v) in picks {
                let (key, values) = CHOICES[k];
                if keys.contains(&key) {
                    continue;
                }
                keys.push(key);
                text.push_str(&format!("{key} = {}\n", values[v % values.len()]));
            }
            (text, keys)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the bytes, the parser answers: a configuration or an error.
        #[test]
        fn any_input_is_answered_without_panic(text in "\\PC{0,300}") {
            let _ = Config::parse(&text, "fuzz.toml");
        }

        /// A refused file is refused for a key it has, named in the error; an accepted
        /// one renders to TOML that parses back to the same configuration.
        #[test]
        fn refusals_name_a_given_key_and_acceptances_round_trip((text, keys) in file()) {
            match Config::parse(&text, "gen.toml") {
                Ok(c) => {
                    let back = Config::parse(&c.to_toml(), "rendered");
                    prop_assert_eq!(back.ok(), Some(c));
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(
                        keys.iter().any(|k| msg.contains(k)),
                        "{} names none of {:?}\n{}", msg, keys, text
                    );
                }
            }
        }
    }
}

#[test]
fn ipfix_settings_are_checked_and_name_the_field() {
    let base = "[stateful]\npool4 = \"203.0.113.0/30\"\n";
    let c = Config::parse(
        &format!("{base}ipfix_collector = \"[2001:db8::9]:4739\"\n"),
        "x",
    )
    .unwrap();
    let s = c.stateful.as_ref().unwrap().ipfix().unwrap();
    assert_eq!(s.collector, "[2001:db8::9]:4739".parse().unwrap());
    assert_eq!((s.domain, s.template_refresh.as_secs()), (1, 60));
    assert!(
        Config::parse(base, "x")
            .unwrap()
            .stateful
            .unwrap()
            .ipfix()
            .is_none(),
        "off by default"
    );
    let e = err(&format!("{base}ipfix_collector = \"0.0.0.0:4739\"\n"));
    assert!(
        e.contains("stateful.ipfix_collector") && e.contains("collector"),
        "{e}"
    );
    let e = err(&format!("{base}ipfix_collector = \"collector\"\n"));
    assert!(e.contains("ipfix_collector"), "{e}");
    let e = err(&format!("{base}ipfix_template_refresh_secs = 0\n"));
    assert!(e.contains("stateful.ipfix_template_refresh_secs"), "{e}");
}

#[test]
fn deterministic_mapping_is_computed_and_checked() {
    let base = "[stateful]\npool4 = \"203.0.113.0/30\"\nports = \"1024-65535\"\n";
    let c = Config::parse(
        &format!("{base}[stateful.deterministic]\nclients = \"2001:db8:6::/56\"\n"),
        "x",
    )
    .unwrap();
    let d = c.stateful.as_ref().unwrap().deterministic_map().unwrap();
    // 256 /64s over 4 addresses: 64 each, 64512 ports / 64 = 1008 per block.
    assert_eq!((d.per_addr, d.block), (64, [1008, 1008, 1008]));
    assert_eq!(c.dataplane().det, d);
    let e = err(&format!(
        "{base}[stateful.deterministic]\nclients = \"2001:db8:6::1/56\"\n"
    ));
    assert!(e.contains("stateful.deterministic.clients"), "{e}");
    let e = err(&format!(
        "{base}[stateful.deterministic]\nclients = \"2001:db8::/32\"\nclient_prefix_len = 64\n"
    ));
    assert!(e.contains("2^32 clients"), "{e}");
    let e = err(&format!(
        "{base}[stateful.deterministic]\nclients = \"2001:db8:6::/56\"\nclient_prefix_len = 72\n"
    ));
    assert!(e.contains("one half"), "{e}");
    // 2^20 clients on 4 addresses leave no 2-port block.
    let e = err(&format!(
        "{base}[stateful.deterministic]\nclients = \"2001:db8::/44\"\n"
    ));
    assert!(e.contains("less than 2 tcp ports"), "{e}");
}

#[test]
fn port_blocks_are_sized_and_checked() {
    let base = "[stateful]\npool4 = \"203.0.113.0/30\"\nports = \"1024-65535\"\n";
    // The default limit (4096 ports) in blocks of 512: 8 blocks.
    let c = Config::parse(&format!("{base}port_block_size = 512\n"), "x").unwrap();
    let d = c.dataplane();
    assert_eq!((d.block_size, d.max_blocks), (512, 8));
    let c = Config::parse(
        &format!("{base}port_block_size = 100\nper_client_limit = 250\n"),
        "x",
    )
    .unwrap();
    assert_eq!(c.dataplane().max_blocks, 3, "ceil(250 / 100)");
    let c = Config::parse(
        &format!("{base}port_block_size = 100\nper_client_limit = 0\n"),
        "x",
    )
    .unwrap();
    assert_eq!(
        c.dataplane().max_blocks,
        8,
        "no limit: as many as a /64 holds"
    );
    assert_eq!(
        Config::parse(base, "x").unwrap().dataplane().block_size,
        0,
        "off by default"
    );
    let e = err(&format!("{base}port_block_size = 128\n"));
    assert!(
        e.contains("stateful.port_block_size") && e.contains("at least 512"),
        "{e}"
    );
    let e = err(&format!(
        "{base}port_block_size = 1\nper_client_limit = 2\n"
    ));
    assert!(e.contains("at least 2 ports"), "{e}");
    let e = err(&format!(
        "{base}icmp_ids = \"1-100\"\nport_block_size = 512\n"
    ));
    assert!(e.contains("icmp range 1-100"), "{e}");
    let e = err(&format!(
        "{base}port_block_size = 512\n[stateful.deterministic]\nclients = \"2001:db8:6::/56\"\n"
    ));
    assert!(e.contains("one or the other"), "{e}");
    // A reload may not change the layout of blocks.
    let a = Config::parse(&format!("{base}port_block_size = 512\n"), "x").unwrap();
    let b = Config::parse(&format!("{base}port_block_size = 1024\n"), "x").unwrap();
    let e = a.check_reload(&b).unwrap_err().to_string();
    assert!(e.contains("stateful.port_block_size"), "{e}");
}

#[test]
fn forwarding_from_the_hook_under_either_name() {
    use nat64_common::maps::CONFIG_F_FIB;
    let fib = |t: &str| Config::parse(t, "x").unwrap().dataplane().flags & CONFIG_F_FIB;
    assert_eq!(fib(""), 0, "off by default");
    assert_eq!(fib("forward_in_dataplane = true"), CONFIG_F_FIB);
    // Its first name, from when only XDP forwarded, still reads.
    assert_eq!(fib("forward_in_xdp = true"), CONFIG_F_FIB);
    let c = Config::parse("forward_in_xdp = true", "x").unwrap();
    assert!(
        c.to_toml().contains("forward_in_dataplane = true"),
        "shown under its name"
    );
}

#[test]
fn the_shared_address_alias_is_checked_routed_and_may_be_off() {
    let base = "[stateful]\npool4 = \"203.0.113.0/30\"\n";
    let c = Config::parse(base, "x").unwrap();
    let alias = crate::config::stateful::DEFAULT_SHARED_ALIAS;
    assert_eq!(c.shared_alias(), Some(alias), "on by default");
    for a in [alias, std::net::Ipv4Addr::new(240, 0, 0, 65)] {
        assert!(
            c.link_routes().1.contains(&ipnet::Ipv4Net::from(a)),
            "{a} routed into the link: {:?}",
            c.link_routes().1
        );
    }
    let off = Config::parse(&format!("{base}shared_address_alias = \"off\"\n"), "x").unwrap();
    assert_eq!(off.shared_alias(), None);
    assert_eq!(off.link_routes().1.len(), 1, "{:?}", off.link_routes().1);
    // Without a translator link there is nowhere to route it.
    let no_link = Config::parse(&format!("translator_link = \"off\"\n{base}"), "x").unwrap();
    assert_eq!(no_link.shared_alias(), None);
    for (value, says) in [
        ("203.0.113.2", "pool4"),
        ("127.0.0.9", "unicast"),
        ("224.0.0.9", "unicast"),
        ("0.0.0.0", "unicast"),
        ("255.255.255.255", "unicast"),
        // The address after it would be the broadcast address.
        ("255.255.255.254", "unicast"),
        // The address after it lies in pool4.
        ("203.0.112.255", "pool4"),
    ] {
        let e = err(&format!("{base}shared_address_alias = \"{value}\"\n"));
        assert!(
            e.contains("stateful.shared_address_alias") && e.contains(says),
            "{value}: {e}"
        );
    }
    let e = err(&format!(
        "[[eam]]\nipv6 = \"2001:db8:9::/120\"\nipv4 = \"198.51.100.0/24\"\n{base}shared_address_alias = \"198.51.100.7\"\n"
    ));
    assert!(e.contains("eam[0].ipv4"), "{e}");
    let e = err(&format!(
        "pool6_ipv4 = [\"198.51.100.0/24\"]\n{base}shared_address_alias = \"198.51.100.7\"\n"
    ));
    assert!(e.contains("pool6_ipv4[0]"), "{e}");
    // The address after the alias counts too, and the message names it.
    let e = err(&format!(
        "pool6_ipv4 = [\"198.51.100.0/24\"]\n{base}shared_address_alias = \"198.51.99.255\"\n"
    ));
    assert!(e.contains("198.51.100.0 lies in pool6_ipv4[0]"), "{e}");
    let e = err(&format!(
        "[[eam]]\nipv6 = \"2001:db8:9::/120\"\nipv4 = \"198.51.100.0/24\"\n{base}shared_address_alias = \"198.51.99.255\"\n"
    ));
    assert!(e.contains("198.51.100.0 lies in eam[0].ipv4"), "{e}");
    let e = err(&format!("{base}shared_address_alias = \"nowhere\"\n"));
    assert!(e.contains("shared_address_alias"), "{e}");
    // Changed by a reload: its route is made with the link.
    let other = Config::parse(
        &format!("{base}shared_address_alias = \"203.0.113.64\"\n"),
        "x",
    )
    .unwrap();
    let e = c.check_reload(&other).unwrap_err().to_string();
    assert!(e.contains("stateful.shared_address_alias"), "{e}");
}
