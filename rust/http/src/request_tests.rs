//! Parser unit tests: framing, pipelining, limits and smuggling refusals.

use super::*;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Head { method: String, target: Vec<u8>, headers: Vec<(Vec<u8>, Vec<u8>)>, keep_alive: bool },
    Body(Vec<u8>),
    End,
    Error(u16),
}

#[derive(Default)]
struct Collect(Vec<Ev>);

impl Sink for Collect {
    type Error = ();
    fn head(&mut self, h: &Head<'_>) -> Result<(), ()> {
        let headers = h.headers.iter().map(|x| (x.name.as_bytes().to_vec(), x.value.to_vec())).collect();
        self.0.push(Ev::Head {
            method: h.method.into(),
            target: h.target.into(),
            headers,
            keep_alive: h.keep_alive,
        });
        Ok(())
    }
    fn body(&mut self, data: &[u8]) -> Result<(), ()> {
        assert!(!data.is_empty());
        match self.0.last_mut() {
            Some(Ev::Body(b)) => b.extend_from_slice(data),
            _ => self.0.push(Ev::Body(data.to_vec())),
        }
        Ok(())
    }
    fn end(&mut self) -> Result<(), ()> {
        self.0.push(Ev::End);
        Ok(())
    }
    fn error(&mut self, e: HttpError) -> Result<(), ()> {
        self.0.push(Ev::Error(e.status));
        Ok(())
    }
}

fn parse_in(input: &[u8], step: usize, limits: Limits) -> Vec<Ev> {
    let mut p = Parser::new(limits);
    let mut sink = Collect::default();
    for piece in input.chunks(step.max(1)) {
        p.feed(piece, &mut sink).unwrap();
    }
    sink.0
}

fn parse(input: &[u8]) -> Vec<Ev> {
    let whole = parse_in(input, input.len(), Limits::default());
    for step in [1, 2, 3, 7] {
        assert_eq!(parse_in(input, step, Limits::default()), whole, "split in {step}");
    }
    whole
}

fn error_of(input: &[u8]) -> u16 {
    match parse(input).last() {
        Some(Ev::Error(status)) => *status,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn simple_get() {
    let evs = parse(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-Y:  z \r\n\r\n");
    assert_eq!(
        evs,
        vec![
            Ev::Head {
                method: "GET".into(),
                target: b"/a%20b?x=1".to_vec(),
                headers: vec![(b"Host".to_vec(), b"h".to_vec()), (b"X-Y".to_vec(), b"z".to_vec())],
                keep_alive: true,
            },
            Ev::End
        ]
    );
}

#[test]
fn path_and_query_split() {
    struct PathSink(Vec<(Vec<u8>, Vec<u8>)>);
    impl Sink for PathSink {
        type Error = ();
        fn head(&mut self, h: &Head<'_>) -> Result<(), ()> {
            self.0.push((h.path.to_vec(), h.query.to_vec()));
            Ok(())
        }
        fn body(&mut self, _: &[u8]) -> Result<(), ()> {
            Ok(())
        }
        fn end(&mut self) -> Result<(), ()> {
            Ok(())
        }
        fn error(&mut self, _: HttpError) -> Result<(), ()> {
            Err(())
        }
    }
    let mut sink = PathSink(Vec::new());
    let mut p = Parser::new(Limits::default());
    p.feed(b"GET /p?a=1?b HTTP/1.1\r\nHost: h\r\n\r\nGET /q HTTP/1.1\r\nHost: h\r\n\r\n", &mut sink).unwrap();
    assert_eq!(sink.0, vec![(b"/p".to_vec(), b"a=1?b".to_vec()), (b"/q".to_vec(), b"".to_vec())]);
}

#[test]
fn pipelined_with_bodies() {
    let input = b"POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
POST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n";
    let evs = parse(input);
    let targets: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Head { target, keep_alive, .. } => Some((target.clone(), *keep_alive)),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec![(b"/1".to_vec(), true), (b"/2".to_vec(), true), (b"/3".to_vec(), false)]);
    let bodies: Vec<_> = evs.iter().filter(|e| matches!(e, Ev::Body(_) | Ev::End)).collect();
    assert_eq!(
        bodies,
        vec![&Ev::Body(b"hello".to_vec()), &Ev::End, &Ev::Body(b"abc".to_vec()), &Ev::End, &Ev::End]
    );
}

#[test]
fn http10_keep_alive() {
    let close = parse(b"GET / HTTP/1.0\r\n\r\n");
    assert!(matches!(close[0], Ev::Head { keep_alive: false, .. }));
    let keep = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(matches!(keep[0], Ev::Head { keep_alive: true, .. }));
}

#[test]
fn smuggling_is_refused() {
    let cases: [&[u8]; 8] = [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(error_of(case), 400, "{}", String::from_utf8_lossy(case));
    }
    assert_eq!(error_of(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
}

#[test]
fn malformed_heads_are_refused() {
    let cases: [&[u8]; 8] = [
        b"GET\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(error_of(case), 400, "{}", String::from_utf8_lossy(case));
    }
}

#[test]
fn limits() {
    let small = Limits { max_head: 64, max_headers: 3 };
    let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(100));
    assert_eq!(parse_in(big.as_bytes(), 1000, small).last(), Some(&Ev::Error(431)));
    // An endless head is refused once the limit is passed, without its end.
    let endless = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "a".repeat(100));
    assert_eq!(parse_in(endless.as_bytes(), 5, small).last(), Some(&Ev::Error(431)));
    let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(parse_in(many, 1000, small).last(), Some(&Ev::Error(431)));
    let many_limits = Limits { max_head: 1 << 20, max_headers: 200 };
    let lots: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let lots = format!("GET / HTTP/1.1\r\nHost: h\r\n{lots}\r\n");
    assert!(matches!(parse_in(lots.as_bytes(), 999, many_limits)[0], Ev::Head { .. }));
}

#[test]
fn errors_stop_the_parser() {
    let evs = parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nBOGUS\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[2], Ev::Error(400));
}

#[test]
fn extra_body_bytes_are_the_next_request() {
    let evs = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nabcdef\r\n\r\n");
    assert_eq!(evs[1], Ev::Body(b"ab".to_vec()));
    assert_eq!(evs.last(), Some(&Ev::Error(400)));
}

#[test]
fn upgrade_pauses_and_resumes() {
    let input = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nFRAME";
    let mut p = Parser::new(Limits::default());
    let mut sink = Collect::default();
    p.feed(&input[..20], &mut sink).unwrap();
    p.feed(&input[20..], &mut sink).unwrap();
    p.feed(b"MORE", &mut sink).unwrap();
    assert!(p.is_paused());
    assert_eq!(sink.0.len(), 1);
    assert_eq!(p.take_rest(), b"FRAMEMORE");

    let mut p = Parser::new(Limits::default());
    let mut sink = Collect::default();
    p.feed(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", &mut sink)
        .unwrap();
    p.resume();
    p.feed(b"", &mut sink).unwrap();
    assert_eq!(sink.0.len(), 3, "{:?}", sink.0);
}

#[test]
fn leading_blank_lines_are_skipped() {
    assert!(matches!(parse(b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")[0], Ev::Head { .. }));
}

#[test]
fn bare_lf_heads_parse() {
    assert!(matches!(parse(b"GET / HTTP/1.1\nHost: h\n\n")[0], Ev::Head { .. }));
}

#[test]
fn another_http_version_is_505_and_a_malformed_one_400() {
    assert_eq!(error_of(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
    assert_eq!(error_of(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
    assert_eq!(error_of(b"GET / HTTP/3.0\r\n\r\n"), 505);
    assert_eq!(error_of(b"GET / HTTX/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(error_of(b"GET / HTTP/1.x\r\nHost: h\r\n\r\n"), 400);
}

#[test]
fn connect_is_refused_not_served() {
    assert_eq!(error_of(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 501);
    // Only the method CONNECT (methods are case-sensitive): a path named so is fine.
    let evs = parse(b"GET /CONNECT HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(!evs.is_empty());
}
