// Placeholder, replaced by the demo service.
int main() { return 0; }
