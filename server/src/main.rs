fn main() {
    println!("berth: not yet");
}
